"""Ranking examples (docs/ARCHITECTURE.md, "Examples"): one per impression, features only from
events before the impression, by the one history rule of both stages (`tfrec.features.history`).

"Before" an impression at time t: the user's watches before its cut in the watch order. A page
built from a next-watch example (MovieLens retrieved impressions) carries that example's cut,
`watches_before` (the label's position), so its watches before are exactly the candidate
generator's history of that example, same-second watches the tie rule puts first included. A
logged impression has no position: its watches before are those with timestamp < t, so a watch in
the impression's second (a click's own watch can be logged at it) never leaks into its page.

Columns of the returned ExampleSet (n impressions, sorted by user, timestamp, cut, position):
  user_id, video_id        [n] str; video_id is the impressed video
  timestamp, position      [n] int64
  clicked                  [n] int64 0/1, the label
  watch_time               [n] float64 seconds; the weight of a clicked impression (1 otherwise,
                           see `tfrec.losses.weighted_logistic.watch_time_weights`)
  watches_before           [n] int64: the impression's cut, the number of the user's watches
                           before it (given, or counted by time)
  watch_history            Ragged: the last `max_history` of those watches, most recent first, in
                           the project's watch order (`tfrec.features.ordering`): candidate
                           generation's format and rule, so its tower scores the same history
  search_tokens            Ragged: tokens of the last `max_search_queries` searches strictly
                           before t (candidate generation's rule)
  user_language, video_language  [n] str ("" when unknown)
  seconds_since_channel_watch, seconds_since_topic_watch
                           [n] float64: t - the user's last watch before the cut of a video of
                           this video's channel / topic (0 for a tied watch of the same second);
                           NEVER_SECONDS when there is none (or the video's channel / topic is
                           unknown), with the indicators
  never_watched_channel, never_watched_topic   [n] float64 0/1
  previous_impressions     [n] float64: impressions of this video to this user at an earlier
                           (time, cut): strictly earlier logged ones; for pages built from tied
                           next-watch examples also those of the examples before in tie order
  video_age_seconds        [n] float64: t - upload_timestamp (0 when the videos table has none)
  <users columns>          [n] str: the user's demographics (for the candidate-generation tower)
  <extra impression columns>  passed through (e.g. a simulator's true expected watch time)
The topic is the videos table's `topic` column, else the first of its `genres` ("|"-joined, as
MovieLens has), else unknown. Missing optional columns give constant features, so the feature set
(and the ranker's serving signature) is the same for every source.

Everything is vectorised (sorts and binary searches on (group, time) or (group, row) keys), no
loop over rows.
"""
import numpy as np
import pandas as pd

from tfrec.data.errors import DataError
from tfrec.features.example_set import ExampleSet
from tfrec.features.history import cuts_at_times, earlier_in_group, last_row_before, rows_before
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


def _watch_cuts(imp, ucode, times, w_u, w_t, keys, source):
    """Each impression's cut, as a row of the ordered watches table (`tfrec.features.history`).

    A page built from a next-watch example carries that example's cut (`watches_before`, the
    label's position): its watches before are the example's, same-second ties included. A logged
    impression at t has none: its watches before are those with timestamp < t.

    Args:
      imp: the sorted impressions; ucode [n], times [n] their user codes and timestamps.
      w_u, w_t: [W] user code and timestamp of each watch, in watch order.
    Returns:
      (cuts [n], user_starts [n]): the user's watch rows before the query are [user_starts, cuts).
    Raises:
      DataError: a watches_before outside the user's watches or not in the page's second.
    """
    starts = np.searchsorted(w_u, ucode, side="left")
    if "watches_before" not in imp.columns:
        return cuts_at_times(keys(w_u, w_t), keys(ucode, times)), starts
    cuts = starts + imp["watches_before"].to_numpy(np.int64)
    ends = np.searchsorted(w_u, ucode, side="right")
    padded = np.append(w_t, 0)  # so that the clipped indices below are valid at the table's end
    # The cut lies in the page's second: the watch before it is not later and the one after it
    # not earlier, else the page's time and its history would disagree.
    earlier_ok = (cuts == starts) | (padded[np.clip(cuts - 1, 0, len(w_t))] <= times)
    later_ok = (cuts == ends) | (padded[np.clip(cuts, 0, len(w_t))] >= times)
    ok = (cuts >= starts) & (cuts <= ends) & earlier_ok & later_ok
    if not ok.all():
        i = int(np.flatnonzero(~ok)[0])
        raise DataError(source, f"impression of {imp['user_id'].iloc[i]!r} at "
                        f"{int(times[i])}: watches_before={int(cuts[i] - starts[i])} is not a "
                        "position of that second in the user's watches")
    return cuts, starts


def _last_group_watch(w_groups, q_groups, cuts, w_t, times):
    """([m] seconds from the last watch of the query's group before its cut, [m] bool never)."""
    row = last_row_before(w_groups, q_groups, cuts)
    never = row < 0
    seconds = np.full(len(row), NEVER_SECONDS)
    seconds[~never] = times[~never] - w_t[row[~never]]
    return seconds, never


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
        None uses `events.impressions`. An int `watches_before` column (pages built from
        next-watch examples, `retrieved_impressions`) gives each impression its cut; without it
        the cut is the watches strictly before the impression's time.
      max_history: watches kept in watch_history (= the candidate generator's max_history).
      max_search_queries: searches whose tokens are kept.
    Returns:
      ExampleSet.
    Raises:
      DataError: no impressions, an impression of a video or user missing from the tables, or a
        watches_before that is not a position of the impression's second in the user's watches.
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
    # Pages of one second built from tied next-watch examples stay whole, in tie order.
    page_order = ["_u", "timestamp", *(["watches_before"] if "watches_before" in imp.columns
                                       else []), "position"]
    imp = imp.sort_values(page_order, kind="stable").reset_index(drop=True)
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

    # One history rule with candidate generation (`tfrec.features.history`): the watches before
    # each impression are the rows [starts, cuts) of the ordered watches table.
    cuts, starts = _watch_cuts(imp, ucode, times, w_u, w_t, keys, source)
    hist_idx, hist_len = rows_before(cuts, max_history, starts)
    video_ids = video_index.to_numpy(dtype=object)
    out = {name: imp[name].to_numpy() for name in IMPRESSION_COLUMNS}
    out["user_id"] = out["user_id"].astype(str).astype(object)
    out["video_id"] = out["video_id"].astype(str).astype(object)
    out["watches_before"] = cuts - starts
    out["watch_history"] = Ragged(video_ids[w_vrow[hist_idx]], hist_len)

    tokens = [tokenize_query(q) for q in searches["query"]]
    token_lengths = np.fromiter((len(t) for t in tokens), np.int64, len(tokens))
    flat_tokens = np.array([tok for toks in tokens for tok in toks], dtype=object)
    s_keys = keys(s_u, s_t)
    q_idx, q_len = rows_before(cuts_at_times(s_keys, keys(ucode, times)), max_search_queries,
                               cuts_at_times(s_keys, keys(ucode, times * 0 + keys.t0)))
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
        seconds, never = _last_group_watch(w_groups, q_groups, cuts, w_t, times)
        out[f"seconds_since_{name}_watch"] = seconds
        out[f"never_watched_{name}"] = never.astype(np.float64)

    pair, _ = _pair_groups(ucode, vrow, ucode[:0], vrow[:0])
    # Earlier = an earlier (time, cut): pages built from next-watch examples in one second are
    # in tie order, as their histories are; logged impressions in one second are not earlier.
    out["previous_impressions"] = earlier_in_group(pair, times, cuts).astype(np.float64)
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


def holdout_latest(examples, share):
    """(earlier, latest) ExampleSets: the latest `share` of impressions by time (pages whole,
    a second never split) are held out, e.g. for a ranker's epoch choice and Platt scaling."""
    times = np.asarray(examples["timestamp"])
    cut = np.quantile(times, 1 - share, method="higher")
    return examples.take(times < cut), examples.take(times >= cut)
