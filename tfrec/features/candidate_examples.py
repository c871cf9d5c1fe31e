"""Candidate-generation examples (docs/ARCHITECTURE.md, "Examples").

One example per (user, training watch at position i, time t): the label is that watch; every
feature comes from before it:
  watches_before  i, the example's cut (`tfrec.features.history`, the one history rule of both
                  stages): a ranking page built from this example gets the same history from it
  watch_history   the watches at positions < i in the one watch order of the project (time, ties
                  broken by crc32; `tfrec.features.ordering`), most recent first, at most
                  `max_history`; so their timestamps are <= t, and a watch in the same second as
                  the label is history only if the neutral tie rule puts it first (docs/PROTOCOL.md)
  search_tokens   tokens of the most recent `max_search_queries` searches strictly before t,
                  most recent query first
  example_age     end of the training window - t, in seconds (0 at serving)
  demographics    the user's columns of the users table
At most `max_examples_per_user` examples per user (a seeded per-user sample) keep heavy users from
dominating the loss, as the paper does. Held-out next-watch queries (validation, test) are built by
the same code with example_age = 0, and carry the user's full watch list before the target as
`exclusions` (what evaluation must not recommend).

`user_candidate_examples` and `user_next_watch_queries` are pure functions of one user's events; the
local driver `build_candidate_examples` (and later a Beam driver) only slices users and calls them.
"""
import dataclasses
import zlib

import numpy as np

from tfrec.features.history import cuts_at_times, rows_before
from tfrec.features.ragged import Ragged, ranges


@dataclasses.dataclass
class UserSearches:
    """One user's searches, ascending in time: `timestamps` [q], `tokens` Ragged [q rows]."""

    timestamps: np.ndarray
    tokens: Ragged

    @classmethod
    def empty(cls, token_dtype=np.int64):
        return cls(np.zeros(0, np.int64), Ragged(np.zeros(0, token_dtype), np.zeros(0, np.int64)))


def _search_tokens_before(searches, query_times, max_queries):
    """Tokens of the most recent searches strictly before each query time (newest query first)."""
    if len(searches.timestamps) == 0:
        return Ragged(searches.tokens.values[:0], np.zeros(len(query_times), np.int64))
    query_idx, per_row = rows_before(cuts_at_times(searches.timestamps, query_times),
                                     max_queries)
    token_lengths = searches.tokens.lengths[query_idx]
    flat = ranges(searches.tokens.offsets[:-1][query_idx], token_lengths)
    row_of_query = np.repeat(np.arange(len(query_times)), per_row)
    lengths = np.bincount(row_of_query, weights=token_lengths, minlength=len(query_times))
    return Ragged(searches.tokens.values[flat], lengths.astype(np.int64))


def _features_at(video_ids, positions, label_times, searches, config):
    """History features of the queries at `positions` [m] (the labels' cuts, `history`)."""
    hist_idx, hist_len = rows_before(positions, config.max_history)
    return {
        "watches_before": np.asarray(positions, np.int64),
        "watch_history": Ragged(video_ids[hist_idx], hist_len),
        "search_tokens": _search_tokens_before(searches, label_times, config.max_search_queries),
    }


def user_candidate_examples(user_id, video_ids, timestamps, num_train, end_of_training, config,
                            searches=None):
    """Training examples of one user (pure: same inputs, same outputs).

    Args:
      user_id: the user's id (str); with `config.seed` it seeds the cap sample.
      video_ids: [n] the user's watches in watch order (see `tfrec.features.ordering`).
      timestamps: [n] int64 seconds, ascending.
      num_train: watches [0, num_train) are the training part; only they become labels.
      end_of_training: int64 seconds, the end of the training window.
      config: ExampleConfig.
      searches: UserSearches or None.
    Returns:
      dict of label [m], timestamp [m] int64, example_age [m] int64 seconds, watches_before [m]
      int64 (the label's position), and Ragged watch_history / search_tokens with m rows.
    """
    searches = searches or UserSearches.empty()
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
        **_features_at(video_ids, positions, label_times, searches, config),
    }


def user_next_watch_queries(video_ids, timestamps, target_positions, config, searches=None):
    """Held-out next-watch queries of one user (pure).

    Args:
      video_ids, timestamps: [n] as in `user_candidate_examples`.
      target_positions: [m] positions of the held-out targets.
    Returns:
      dict of label [m], timestamp [m], example_age [m] (zeros: serving-time queries),
      watches_before [m] (= target_positions), Ragged watch_history / search_tokens, and Ragged
      exclusions: every watch before the target.
    """
    searches = searches or UserSearches.empty()
    target_positions = np.asarray(target_positions, dtype=np.int64)
    label_times = timestamps[target_positions]
    return {
        "label": video_ids[target_positions],
        "timestamp": label_times,
        "example_age": np.zeros(len(target_positions), np.int64),
        **_features_at(video_ids, target_positions, label_times, searches, config),
        "exclusions": Ragged(video_ids[ranges(np.zeros_like(target_positions), target_positions)],
                             target_positions),
    }
