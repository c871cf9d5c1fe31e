"""Candidate-generation examples (docs/ARCHITECTURE.md, "Examples").

One example per (user, training watch at position i, time t): the label is that watch; every
feature comes from before it:
  watches_before  i, the example's cut (`tfrec.features.history`, the one history rule of both
                  stages): a ranking page built from this example gets the same history from it
  example_age     end of the training window - t, in seconds (0 at serving)
  <tower feature columns>  each registered tower feature's columns at the cut, in feature order
                  (`tfrec.features.tower`), e.g.
    watch_history   the watches at positions < i in the one watch order of the project (time,
                    ties broken by crc32; `tfrec.features.ordering`), most recent first, at most
                    `max_history`; so their timestamps are <= t, and a watch in the same second
                    as the label is history only if the neutral tie rule puts it first
                    (docs/PROTOCOL.md)
    search_tokens   tokens of the most recent `max_search_queries` searches strictly before t,
                    most recent query first
  demographics    the user's columns of the users table (joined by the driver)
At most `max_examples_per_user` examples per user (a seeded per-user sample) keep heavy users from
dominating the loss, as the paper does. Held-out next-watch queries (validation, test) are built by
the same code with example_age = 0, and carry the user's full watch list before the target as
`exclusions` (what evaluation must not recommend).

`user_candidate_examples` and `user_next_watch_queries` are pure functions of one user's events, and
`user_examples` calls them for every split of one user's watches: the local driver
(`tfrec.features.local_driver`) and the Beam driver (`tfrec.features.beam_driver`) only slice users
and call it.
"""
from __future__ import annotations

import dataclasses
import typing
import zlib
from collections.abc import Mapping, Sequence

import numpy as np

from tfrec.config import ExampleConfig
from tfrec.features.ragged import Ragged, ranges
from tfrec.features.split import TEST, TRAIN, VALIDATION, TimeWindows
from tfrec.features.tower import Column, Cuts, TowerFeature, UserEvents, registered_tower_features


@dataclasses.dataclass
class UserSearches:
    """One user's searches, ascending in time: `timestamps` [q], `tokens` Ragged [q rows]."""

    timestamps: np.ndarray
    tokens: Ragged

    @classmethod
    def empty(cls, token_dtype: type = np.int64) -> UserSearches:
        return cls(np.zeros(0, np.int64), Ragged(np.zeros(0, token_dtype), np.zeros(0, np.int64)))


def _features_at(events: UserEvents, positions: np.ndarray, label_times: np.ndarray,
                 config: ExampleConfig, features: Sequence[TowerFeature]) -> dict[str, Column]:
    """The cut of the queries at `positions` [m] (`history`), then each tower feature's columns
    there, in feature order."""
    cuts = Cuts(np.asarray(positions, np.int64), label_times)
    columns: dict[str, Column] = {"watches_before": cuts.positions}
    for feature in features:
        columns.update(feature.example_columns(events, cuts, config))
    return columns


def _user_events(video_ids: np.ndarray, timestamps: np.ndarray, searches: UserSearches | None,
                 watch_columns: Mapping[str, np.ndarray] | None) -> UserEvents:
    watches = {"video_id": video_ids, "timestamp": timestamps, **(watch_columns or {})}
    return UserEvents(watches, searches or UserSearches.empty())


def user_candidate_examples(user_id: str, video_ids: np.ndarray, timestamps: np.ndarray,
                            num_train: int, end_of_training: int, config: ExampleConfig,
                            searches: UserSearches | None = None,
                            watch_columns: Mapping[str, np.ndarray] | None = None,
                            features: Sequence[TowerFeature] | None = None
                            ) -> dict[str, Column]:
    """Training examples of one user (pure: same inputs, same outputs).

    Args:
      user_id: the user's id (str); with `config.seed` it seeds the cap sample.
      video_ids: [n] the user's watches in watch order (see `tfrec.features.ordering`).
      timestamps: [n] int64 seconds, ascending.
      num_train: watches [0, num_train) are the training part; only they become labels.
      end_of_training: int64 seconds, the end of the training window.
      config: ExampleConfig.
      searches: UserSearches or None.
      watch_columns: {column: [n]} the watches' other columns (watch_time, ...), or None.
      features: the tower features whose columns to make (default: every registered one).
    Returns:
      dict of label [m], timestamp [m] int64, example_age [m] int64 seconds, watches_before [m]
      int64 (the label's position), then each feature's columns with m rows (Ragged
      watch_history / search_tokens, ...).
    """
    events = _user_events(video_ids, timestamps, searches, watch_columns)
    positions = np.arange(min(config.min_history, num_train), num_train)
    cap = config.max_examples_per_user
    if cap and len(positions) > cap:
        rng = np.random.default_rng([config.seed, zlib.crc32(str(user_id).encode())])
        positions = np.sort(rng.choice(positions, size=cap, replace=False))
    label_times = timestamps[positions]
    return {
        "label": video_ids[positions],
        "timestamp": label_times,
        "example_age": end_of_training - label_times,
        **_features_at(events, positions, label_times, config,
                       registered_tower_features() if features is None else features),
    }


def user_next_watch_queries(video_ids: np.ndarray, timestamps: np.ndarray,
                            target_positions: np.ndarray, config: ExampleConfig,
                            searches: UserSearches | None = None,
                            watch_columns: Mapping[str, np.ndarray] | None = None,
                            features: Sequence[TowerFeature] | None = None
                            ) -> dict[str, Column]:
    """Held-out next-watch queries of one user (pure).

    Args:
      video_ids, timestamps, searches, watch_columns, features: as in `user_candidate_examples`.
      target_positions: [m] positions of the held-out targets.
    Returns:
      dict of label [m], timestamp [m], example_age [m] (zeros: serving-time queries),
      watches_before [m] (= target_positions), each feature's columns, and Ragged exclusions:
      every watch before the target.
    """
    events = _user_events(video_ids, timestamps, searches, watch_columns)
    target_positions = np.asarray(target_positions, dtype=np.int64)
    label_times = timestamps[target_positions]
    return {
        "label": video_ids[target_positions],
        "timestamp": label_times,
        "example_age": np.zeros(len(target_positions), np.int64),
        **_features_at(events, target_positions, label_times, config,
                       registered_tower_features() if features is None else features),
        "exclusions": Ragged(video_ids[ranges(np.zeros_like(target_positions), target_positions)],
                             target_positions),
    }


# The held-out splits of a user's watches by role, and the P3 windows' query sets.
HELD_OUT_ROLES = {"validation": VALIDATION, "test": TEST}
WINDOW_SPLITS = ("validation_window", "test_window")


def _window_positions(timestamps: np.ndarray, windows: TimeWindows) -> dict[str, np.ndarray]:
    """{window split: [m] positions of the watches inside it that have an earlier watch}."""
    inside = {"validation_window": (timestamps >= windows.validation_start)
              & (timestamps < windows.test_start),
              "test_window": timestamps >= windows.test_start}
    out = {}
    for name, mask in inside.items():
        positions = np.flatnonzero(mask)
        out[name] = positions[positions > 0]  # a page needs an earlier watch
    return out


def user_examples(user_id: typing.Any, video_ids: np.ndarray, timestamps: np.ndarray,
                  roles: np.ndarray, end_of_training: int, config: ExampleConfig,
                  searches: UserSearches | None = None,
                  watch_columns: Mapping[str, np.ndarray] | None = None,
                  features: Sequence[TowerFeature] | None = None,
                  windows: TimeWindows | None = None) -> dict[str, dict[str, Column]]:
    """Every example of one user, by split (pure): what both drivers call per user.

    Args:
      user_id: the user's id; video_ids [n], timestamps [n] int64 s, searches, watch_columns,
        features: as in `user_candidate_examples`, the watches in watch order.
      roles: [n] int8 role of each watch (`tfrec.features.split`: TRAIN first, then held out).
      end_of_training: int64 seconds, the end of the training window (whole data set).
      windows: the P3 TimeWindows (adds the windows' query splits), or None.
    Returns:
      {"train": columns (always, maybe 0 rows), "validation", "test" and, under P3,
      "validation_window", "test_window" when the user has such queries}: each the columns of
      `user_candidate_examples` / `user_next_watch_queries` plus user_id [m] (object).
    """
    features = registered_tower_features() if features is None else features
    num_train = int((roles == TRAIN).sum())
    out = {"train": user_candidate_examples(user_id, video_ids, timestamps, num_train,
                                            end_of_training, config, searches, watch_columns,
                                            features)}
    targets = {name: np.flatnonzero(roles == role) for name, role in HELD_OUT_ROLES.items()}
    if windows is not None:
        targets.update(_window_positions(timestamps, windows))
    for name, positions in targets.items():
        if len(positions):
            out[name] = user_next_watch_queries(video_ids, timestamps, positions, config,
                                                searches, watch_columns, features)
    for columns in out.values():
        columns["user_id"] = np.full(len(columns["label"]), user_id, dtype=object)
    return out
