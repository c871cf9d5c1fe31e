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
  <ranker feature group columns>  the page columns of every registered ranker feature group
                           (`tfrec.features.ranker`), groups in slot order, each group's in its
                           `page_columns` order: user_language, video_language (language);
                           seconds_since_channel_watch, never_watched_channel,
                           seconds_since_topic_watch, never_watched_topic, previous_impressions,
                           video_age_seconds (continuous: see tfrec/features/ranker/continuous.py)
  <users columns>          [n] str: the user's demographics (for the candidate-generation tower)
  <extra impression columns>  passed through (e.g. a simulator's true expected watch time)
Missing optional columns give constant features, so the feature set (and the ranker's serving
signature) is the same for every source.

Everything is vectorised (sorts and binary searches on (group, time) or (group, row) keys), no
loop over rows.
"""
import numpy as np
import pandas as pd

from tfrec.data.errors import DataError
from tfrec.data.schema import EventTables
from tfrec.features.example_set import ExampleSet
from tfrec.features.history import cuts_at_times, rows_before
from tfrec.features.local_driver import tokenize_query
from tfrec.features.ordering import order_watches
from tfrec.features.ragged import Ragged, ranges
from tfrec.features.ranker._base import page_features
from tfrec.features.ranker._pages import RankingPages
# The continuous group's constants, where callers import them from.
from tfrec.features.ranker.continuous import CONTINUOUS_FEATURES, INDICATOR_FEATURES, \
    NEVER_SECONDS

__all__ = ["CONTINUOUS_FEATURES", "IMPRESSION_COLUMNS", "INDICATOR_FEATURES", "NEVER_SECONDS",
           "build_ranking_examples", "holdout_latest", "split_by_time"]
IMPRESSION_COLUMNS = ("user_id", "video_id", "timestamp", "position", "clicked", "watch_time")


class _Keys:
    """Sortable int64 keys (group, time): group * span + (time - t0), for binary searches."""

    def __init__(self, *time_arrays: np.ndarray) -> None:
        times = np.concatenate([np.asarray(t, np.int64) for t in time_arrays])
        self.t0 = int(times.min()) if len(times) else 0
        self.span = (int(times.max()) - self.t0 + 2) if len(times) else 2

    def __call__(self, groups: np.ndarray, times: np.ndarray) -> np.ndarray:
        groups = np.asarray(groups, np.int64)
        if len(groups) and int(groups.max()) >= (2 ** 62) // self.span:
            raise ValueError("too many groups x time span for int64 keys")
        return groups * self.span + (np.asarray(times, np.int64) - self.t0)


def _watch_cuts(imp: pd.DataFrame, ucode: np.ndarray, times: np.ndarray, w_u: np.ndarray,
                w_t: np.ndarray, keys: _Keys, source: str) -> tuple[np.ndarray, np.ndarray]:
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


def build_ranking_examples(events: EventTables, impressions: pd.DataFrame | None = None,
                           max_history: int = 50, max_search_queries: int = 50) -> ExampleSet:
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
    pages = RankingPages(events=events, impressions=imp, users=users, user_codes=ucode,
                         video_rows=vrow, times=times, cuts=cuts, user_starts=starts,
                         watch_users=w_u, watch_times=w_t, watch_video_rows=w_vrow)
    for feature in page_features():
        columns = feature.compute_page_columns(pages)
        if tuple(columns) != feature.page_columns or set(columns) & set(out):
            raise ValueError(f"ranker feature {feature.name!r} computed columns "
                             f"{list(columns)}, not its page_columns {list(feature.page_columns)} "
                             f"(or one that another column already has)")
        out.update(columns)
    for col in users.columns:
        if col != "user_id" and col not in out:
            out[col] = users[col].astype(str).to_numpy(dtype=object)[ucode]
    for col in imp.columns:
        if col not in out and col != "_u":
            out[col] = imp[col].to_numpy()
    return ExampleSet(out)


def split_by_time(examples: ExampleSet, validation_fraction: float = 0.1,
                  test_fraction: float = 0.1) -> tuple[ExampleSet, ExampleSet, ExampleSet]:
    """(train, validation, test) ExampleSets split at two timestamps, pages kept whole.

    The last `test_fraction` of impressions (by time) are test, the `validation_fraction` before
    them validation: the ranker is judged on impressions later than everything it trained on.
    """
    times = np.asarray(examples["timestamp"])
    cut_val = np.quantile(times, 1 - validation_fraction - test_fraction, method="higher")
    cut_test = np.quantile(times, 1 - test_fraction, method="higher")
    masks = (times < cut_val, (times >= cut_val) & (times < cut_test), times >= cut_test)
    return examples.take(masks[0]), examples.take(masks[1]), examples.take(masks[2])


def holdout_latest(examples: ExampleSet, share: float) -> tuple[ExampleSet, ExampleSet]:
    """(earlier, latest) ExampleSets: the latest `share` of impressions by time (pages whole,
    a second never split) are held out, e.g. for a ranker's epoch choice and Platt scaling."""
    times = np.asarray(examples["timestamp"])
    cut = np.quantile(times, 1 - share, method="higher")
    return examples.take(times < cut), examples.take(times >= cut)
