"""continuous: counts and times of the user's past with this video's channel, topic and itself,
and the video's age, [B] float32 each -> the CDF normalisation x~, x~^2, sqrt(x~) (`cdf`
inputs); plus two 0/1 indicators fed as they are.

Columns (per impression at time t, from the watches before its cut, `tfrec.features.history`):
  seconds_since_channel_watch, seconds_since_topic_watch
                        seconds: t - the user's last watch before the cut of a video of this
                        video's channel / topic (0 for a tied watch of the same second);
                        NEVER_SECONDS when there is none (or the video's channel / topic is
                        unknown), with the indicators
  never_watched_channel, never_watched_topic   0/1
  previous_impressions  impressions of this video to this user at an earlier (time, cut):
                        strictly earlier logged ones; for pages built from tied next-watch
                        examples also those of the examples before in tie order
  video_age_seconds     t - upload_timestamp (0 when the videos table has none)
The topic is the videos table's `topic` column, else the first of its `genres` ("|"-joined, as
MovieLens has), else unknown. Vectorised: sorts and binary searches on (group, row) keys.
"""
import numpy as np
import pandas as pd

from tfrec.config import RankingConfig
from tfrec.features.history import earlier_in_group, last_row_before
from tfrec.features.ranker import register_ranker_feature
from tfrec.features.ranker._base import RankerFeature, RankerInput
from tfrec.features.ranker._pages import RankingPages

NEVER_SECONDS = 10 * 365 * 86400.0  # "never": ten years, far beyond any real gap
CONTINUOUS_FEATURES = ("seconds_since_channel_watch", "seconds_since_topic_watch",
                       "previous_impressions", "video_age_seconds")
INDICATOR_FEATURES = ("never_watched_channel", "never_watched_topic")


def _pair_groups(a_left: np.ndarray, b_left: np.ndarray, a_right: np.ndarray,
                 b_right: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Dense int64 codes of the pairs (a, b) of two tables (same pair -> same code).

    a, b: non-negative integer codes."""
    a = np.concatenate([a_left, a_right]).astype(np.int64)
    b = np.concatenate([b_left, b_right]).astype(np.int64)
    _, codes = np.unique(a * (int(b.max(initial=0)) + 1) + b, return_inverse=True)
    codes = codes.reshape(-1)
    return codes[:len(a_left)], codes[len(a_left):]


def _last_group_watch(w_groups: np.ndarray, q_groups: np.ndarray, cuts: np.ndarray,
                      w_t: np.ndarray, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """([m] seconds from the last watch of the query's group before its cut, [m] bool never)."""
    row = last_row_before(w_groups, q_groups, cuts)
    never = row < 0
    seconds = np.full(len(row), NEVER_SECONDS)
    seconds[~never] = times[~never] - w_t[row[~never]]
    return seconds, never


def video_topics(videos: pd.DataFrame) -> np.ndarray:
    """[V] topic of each video: `topic`, else the first genre of `genres`, else ""."""
    if "topic" in videos.columns:
        return videos["topic"].astype(str).to_numpy(dtype=object)
    if "genres" in videos.columns:
        return videos["genres"].astype(str).str.split("|").str[0].fillna("").to_numpy(
            dtype=object)
    return np.full(len(videos), "", dtype=object)


@register_ranker_feature("continuous")
class Continuous(RankerFeature):
    """The CDF-normalised counts and times (`CONTINUOUS_FEATURES`) and the 0/1 indicators
    (`INDICATOR_FEATURES`) of the module docstring."""

    slot = 40
    page_columns = ("seconds_since_channel_watch", "never_watched_channel",
                    "seconds_since_topic_watch", "never_watched_topic", "previous_impressions",
                    "video_age_seconds")

    def inputs(self, config: RankingConfig) -> tuple[RankerInput, ...]:
        return (*(RankerInput(n, "float32", encoding="cdf") for n in CONTINUOUS_FEATURES),
                *(RankerInput(n, "float32", encoding="indicator") for n in INDICATOR_FEATURES))

    def compute_page_columns(self, pages: RankingPages) -> dict[str, np.ndarray]:
        out = {}
        ucode, vrow, times, cuts = pages.user_codes, pages.video_rows, pages.times, pages.cuts
        w_u, w_t, w_vrow = pages.watch_users, pages.watch_times, pages.watch_video_rows
        for name, per_video in (("channel", pages.video_column("channel", "")),
                                ("topic", video_topics(pages.events.videos))):
            per_video = np.asarray(per_video).astype(str)
            codes, _ = pd.factorize(per_video)  # one code per channel (topic) value
            known = per_video != ""
            w_groups, q_groups = _pair_groups(w_u, codes[w_vrow], ucode, codes[vrow])
            w_groups = np.where(known[w_vrow], w_groups, -1)
            q_groups = np.where(known[vrow], q_groups, -1)
            seconds, never = _last_group_watch(w_groups, q_groups, cuts, w_t, times)
            out[f"seconds_since_{name}_watch"] = seconds
            out[f"never_watched_{name}"] = never.astype(np.float64)

        pair, _ = _pair_groups(ucode, vrow, ucode[:0], vrow[:0])
        # Earlier = an earlier (time, cut): pages built from next-watch examples in one second
        # are in tie order, as their histories are; logged impressions in one second are not.
        out["previous_impressions"] = earlier_in_group(pair, times, cuts).astype(np.float64)
        upload = pages.video_column("upload_timestamp", 0.0).astype(np.float64)
        out["video_age_seconds"] = (times - upload[vrow]) if "upload_timestamp" in \
            pages.events.videos.columns else np.zeros(len(pages))
        return out
