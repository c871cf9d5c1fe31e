"""Ranking examples (ARCHITECTURE.md, "Examples"): one per impression, features strictly from
events before the impression's timestamp t.

Columns of the returned ExampleSet (n impressions, sorted by user, timestamp, position):
  user_id, video_id        [n] str; video_id is the impressed video
  timestamp, position      [n] int64
  clicked                  [n] int64 0/1, the label
  watch_time               [n] float64 seconds; the weight of a clicked impression (1 otherwise,
                           see `tfrec.losses.weighted_logistic.watch_time_weights`)
  watch_history            Ragged: the user's last `max_history` watches with timestamp < t, most
                           recent first, in the project's watch order (`tfrec.features.ordering`),
                           the same format as candidate generation's, so its tower can score it
  search_tokens            Ragged: tokens of the last `max_search_queries` searches before t
  user_language, video_language  [n] str ("" when unknown)
  seconds_since_channel_watch, seconds_since_topic_watch
                           [n] float64: t - the user's last watch (before t) of a video of this
                           video's channel / topic; NEVER_SECONDS when there is none (or the
                           video's channel / topic is unknown), with the indicators
  never_watched_channel, never_watched_topic   [n] float64 0/1
  previous_impressions     [n] float64: impressions of this video to this user before t
  video_age_seconds        [n] float64: t - upload_timestamp (0 when the videos table has none)
  <users columns>          [n] str: the user's demographics (for the candidate-generation tower)
  <extra impression columns>  passed through (e.g. a simulator's true expected watch time)
The topic is the videos table's `topic` column, else the first of its `genres` ("|"-joined, as
MovieLens has), else unknown. Missing optional columns give constant features, so the feature set
(and the ranker's serving signature) is the same for every source.

Everything is vectorised (sorts and binary searches on (group, time) keys), no loop over rows.
"""
import numpy as np
import pandas as pd

from tfrec.data.errors import DataError
from tfrec.features.example_set import ExampleSet
from tfrec.features.local_driver import tokenize_query
from tfrec.features.ordering import order_watches
from tfrec.features.ragged import Ragged, ranges

NEVER_SECONDS = 10 * 365 * 86400.0  # "never": ten years, far beyond any real gap
CONTINUOUS_FEATURES = ("seconds_since_channel_watch", "seconds_since_topic_watch",
                       "previous_impressions", "video_age_seconds")
INDICATOR_FEATURES = ("never_watched_channel", "never_watched_topic")
IMPRESSION_COLUMNS = ("user_id", "video_id", "timestamp", "position", "clicked", "watch_time")


class _Keys:
    """Sortable int64 keys (group, time): group * span + (time - t0), for binary searches."""

    def __init__(self, *time_arrays):
        times = np.concatenate([np.asarray(t, np.int64) for t in time_arrays])
        self.t0 = int(times.min()) if len(times) else 0
        self.span = (int(times.max()) - self.t0 + 2) if len(times) else 2

    def __call__(self, groups, times):
        groups = np.asarray(groups, np.int64)
        if len(groups) and int(groups.max()) >= (2 ** 62) // self.span:
            raise ValueError("too many groups x time span for int64 keys")
        return groups * self.span + (np.asarray(times, np.int64) - self.t0)


def _pair_groups(a_left, b_left, a_right, b_right):
    """Dense int64 codes of the pairs (a, b) of two tables (same pair -> same code).

    a, b: non-negative integer codes."""
    a = np.concatenate([a_left, a_right]).astype(np.int64)
    b = np.concatenate([b_left, b_right]).astype(np.int64)
    _, codes = np.unique(a * (int(b.max(initial=0)) + 1) + b, return_inverse=True)
    codes = codes.reshape(-1)
    return codes[:len(a_left)], codes[len(a_left):]


def _last_time_before(event_groups, event_times, query_groups, query_times, keys):
    """[m] time of the last event of the query's group strictly before the query time, or -1.

    Groups < 0 (unknown) never match."""
    event_groups, query_groups = np.asarray(event_groups), np.asarray(query_groups)
    if len(event_groups) == 0:
        return np.full(len(query_groups), -1, np.int64)
    event_keys = keys(np.maximum(event_groups, 0), event_times)
    order = np.argsort(event_keys, kind="stable")
    idx = np.searchsorted(event_keys[order], keys(np.maximum(query_groups, 0), query_times),
                          side="left") - 1
    safe = np.maximum(idx, 0)
    found = (idx >= 0) & (event_groups[order][safe] == query_groups) & (query_groups >= 0)
    return np.where(found, np.asarray(event_times, np.int64)[order][safe], -1)


def _count_before(event_groups, event_times, query_groups, query_times, keys):
    """[m] number of events of the query's group strictly before the query time."""
    sorted_keys = np.sort(keys(event_groups, event_times))
    return (np.searchsorted(sorted_keys, keys(query_groups, query_times), side="left")
            - np.searchsorted(sorted_keys, keys(query_groups, query_times * 0 + keys.t0),
                              side="left"))


def _recent_before(sorted_keys, user_start_keys, query_keys, max_len):
    """(flat indices, lengths): up to max_len events of the user before the query, newest first."""
    ends = np.searchsorted(sorted_keys, query_keys, side="left")
    starts = np.searchsorted(sorted_keys, user_start_keys, side="left")
    lengths = np.minimum(ends - starts, max_len)
    return ranges(ends - 1, lengths, step=-1), lengths


def video_topics(videos):
    """[V] topic of each video: `topic`, else the first genre of `genres`, else ""."""
    if "topic" in videos.columns:
        return videos["topic"].astype(str).to_numpy(dtype=object)
    if "genres" in videos.columns:
        return videos["genres"].astype(str).str.split("|").str[0].fillna("").to_numpy(
            dtype=object)
    return np.full(len(videos), "", dtype=object)


def _video_column(videos, column, default):
    if column in videos.columns:
        return videos[column].to_numpy()
    return np.full(len(videos), default, dtype=object if isinstance(default, str) else float)


def build_ranking_examples(events, impressions=None, max_history=50, max_search_queries=50):
    """One ranking example per impression (see module docstring).

    Args:
      events: validated tfrec.data.schema.EventTables (watches, users, videos, searches).
      impressions: impressions table (schema columns, plus any extra columns to pass through);
        None uses `events.impressions`.
      max_history: watches kept in watch_history (= the candidate generator's max_history).
      max_search_queries: searches whose tokens are kept.
    Returns:
      ExampleSet.
    Raises:
      DataError: no impressions, or an impression of a video or user missing from the tables.
    """
    imp = events.impressions if impressions is None else impressions
    source = events.sources.get("impressions", "impressions")
    if len(imp) == 0:
        raise DataError(source, "no impressions to build ranking examples from")
    missing = [c for c in IMPRESSION_COLUMNS if c not in imp.columns]
    if missing:
        raise DataError(source, f"impressions lack column(s) {missing}")
    users_sorted = np.sort(events.users["user_id"].astype(str).to_numpy())
    imp = imp.assign(_u=np.searchsorted(users_sorted, imp["user_id"].astype(str).to_numpy()))
    imp = imp.sort_values(["_u", "timestamp", "position"], kind="stable").reset_index(drop=True)
    video_index = pd.Index(events.videos["video_id"].astype(str))
    vrow = video_index.get_indexer(imp["video_id"].astype(str))
    bad_user = users_sorted[np.minimum(imp["_u"].to_numpy(), len(users_sorted) - 1)] != \
        imp["user_id"].astype(str).to_numpy()
    if (vrow < 0).any() or bad_user.any():
        i = int(np.flatnonzero((vrow < 0) | bad_user)[0])
        raise DataError(source, f"impression of unknown user or video: "
                        f"{imp['user_id'].iloc[i]!r}, {imp['video_id'].iloc[i]!r}")
    ucode = imp["_u"].to_numpy(np.int64)
    times = imp["timestamp"].to_numpy(np.int64)

    watches = order_watches(events.watches)
    w_u = np.searchsorted(users_sorted, watches["user_id"].astype(str).to_numpy())
    w_t = watches["timestamp"].to_numpy(np.int64)
    w_vrow = video_index.get_indexer(watches["video_id"].astype(str))
    searches = events.searches.sort_values(["user_id", "timestamp"], kind="stable")
    s_u = np.searchsorted(users_sorted, searches["user_id"].astype(str).to_numpy())
    s_t = searches["timestamp"].to_numpy(np.int64)
    keys = _Keys(times, w_t, s_t)

    # Watch history: `watches` is sorted by (user, time, tie key), so (user, time) keys ascend.
    hist_idx, hist_len = _recent_before(keys(w_u, w_t), keys(ucode, times * 0 + keys.t0),
                                        keys(ucode, times), max_history)
    video_ids = video_index.to_numpy(dtype=object)
    out = {name: imp[name].to_numpy() for name in IMPRESSION_COLUMNS}
    out["user_id"] = out["user_id"].astype(str).astype(object)
    out["video_id"] = out["video_id"].astype(str).astype(object)
    out["watch_history"] = Ragged(video_ids[w_vrow[hist_idx]], hist_len)

    tokens = [tokenize_query(q) for q in searches["query"]]
    token_lengths = np.fromiter((len(t) for t in tokens), np.int64, len(tokens))
    flat_tokens = np.array([tok for toks in tokens for tok in toks], dtype=object)
    q_idx, q_len = _recent_before(keys(s_u, s_t), keys(ucode, times * 0 + keys.t0),
                                  keys(ucode, times), max_search_queries)
    token_offsets = np.concatenate([[0], np.cumsum(token_lengths)])
    out["search_tokens"] = Ragged(
        flat_tokens[ranges(token_offsets[:-1][q_idx], token_lengths[q_idx])],
        np.bincount(np.repeat(np.arange(len(imp)), q_len), weights=token_lengths[q_idx],
                    minlength=len(imp)).astype(np.int64))

    users = events.users.set_index(events.users["user_id"].astype(str)).reindex(users_sorted)
    user_language = users["language"].astype(str).to_numpy(dtype=object) \
        if "language" in users.columns else np.full(len(users_sorted), "", dtype=object)
    out["user_language"] = user_language[ucode]
    out["video_language"] = _video_column(events.videos, "language", "").astype(str).astype(
        object)[vrow]

    for name, per_video in (("channel", _video_column(events.videos, "channel", "")),
                            ("topic", video_topics(events.videos))):
        per_video = np.asarray(per_video).astype(str)
        codes, _ = pd.factorize(per_video)  # one code per channel (topic) value
        known = per_video != ""
        w_groups, q_groups = _pair_groups(w_u, codes[w_vrow], ucode, codes[vrow])
        w_groups = np.where(known[w_vrow], w_groups, -1)
        q_groups = np.where(known[vrow], q_groups, -1)
        last = _last_time_before(w_groups, w_t, q_groups, times, keys)
        never = last < 0
        out[f"seconds_since_{name}_watch"] = np.where(never, NEVER_SECONDS,
                                                      (times - last).astype(np.float64))
        out[f"never_watched_{name}"] = never.astype(np.float64)

    pair, _ = _pair_groups(ucode, vrow, ucode[:0], vrow[:0])
    out["previous_impressions"] = _count_before(pair, times, pair, times, keys).astype(np.float64)
    upload = _video_column(events.videos, "upload_timestamp", 0.0).astype(np.float64)
    out["video_age_seconds"] = (times - upload[vrow]) if "upload_timestamp" in \
        events.videos.columns else np.zeros(len(imp))
    for col in users.columns:
        if col != "user_id" and col not in out:
            out[col] = users[col].astype(str).to_numpy(dtype=object)[ucode]
    for col in imp.columns:
        if col not in out and col != "_u":
            out[col] = imp[col].to_numpy()
    return ExampleSet(out)


def split_by_time(examples, validation_fraction=0.1, test_fraction=0.1):
    """(train, validation, test) ExampleSets split at two timestamps, pages kept whole.

    The last `test_fraction` of impressions (by time) are test, the `validation_fraction` before
    them validation: the ranker is judged on impressions later than everything it trained on.
    """
    times = np.asarray(examples["timestamp"])
    cut_val = np.quantile(times, 1 - validation_fraction - test_fraction, method="higher")
    cut_test = np.quantile(times, 1 - test_fraction, method="higher")
    masks = (times < cut_val, (times >= cut_val) & (times < cut_test), times >= cut_test)
    return tuple(examples.take(m) for m in masks)
