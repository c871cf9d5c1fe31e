"""The impressions being turned into ranking examples, as the feature groups' offline columns read
them (`RankerFeature.compute_page_columns`); built by `tfrec.features.ranking_examples`."""
import dataclasses

import numpy as np
import pandas as pd

from tfrec.data.schema import EventTables


@dataclasses.dataclass(frozen=True)
class RankingPages:
    """n impressions (sorted by user, timestamp, cut, position) and the tables they point into.

    The watches before impression i are the rows [user_starts[i], cuts[i]) of the ordered watches
    table (`tfrec.features.history`; `tfrec.features.ordering.order_watches`).

    Attributes:
      events: the validated EventTables.
      impressions: the sorted impressions table (n rows).
      users: the users table, one row per user code (sorted user ids), indexed by user id.
      user_codes: [n] int64 code of each impression's user (row of `users`).
      video_rows: [n] int64 row of each impression's video in `events.videos`.
      times: [n] int64 impression timestamps (seconds).
      cuts, user_starts: [n] int64 rows of the ordered watches table (above).
      watch_users, watch_times, watch_video_rows: [W] user code, timestamp (int64 seconds) and
        video row of each watch, in watch order.
    """

    events: EventTables
    impressions: pd.DataFrame
    users: pd.DataFrame
    user_codes: np.ndarray
    video_rows: np.ndarray
    times: np.ndarray
    cuts: np.ndarray
    user_starts: np.ndarray
    watch_users: np.ndarray
    watch_times: np.ndarray
    watch_video_rows: np.ndarray

    def __len__(self) -> int:
        return len(self.impressions)

    def video_column(self, column: str, default: str | float) -> np.ndarray:
        """[V] the videos table's `column`, or `default` for every video when it has none."""
        videos = self.events.videos
        if column in videos.columns:
            return videos[column].to_numpy()
        return np.full(len(videos), default, dtype=object if isinstance(default, str) else float)

    def user_column(self, column: str) -> np.ndarray:
        """[U] object array of the users table's `column` as strings, "" when it has none."""
        if column in self.users.columns:
            return self.users[column].astype(str).to_numpy(dtype=object)
        return np.full(len(self.users), "", dtype=object)
