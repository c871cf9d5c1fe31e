"""The one history rule of both stages (docs/PROTOCOL.md, P1): what a query's "before" is.

A user's watches are in the project's one watch order (`tfrec.features.ordering`: by timestamp,
ties broken by crc32("user_id:video_id")). A query is a *cut* in that order: the number of the
user's watches that come before it. Its watch history is the last `max_history` watches before
the cut, most recent first, and every other watch-derived feature (time since the last watch of a
channel or topic) is computed from the same watches. The cut of

  - a next-watch example (a candidate-generation label at position p, and a ranking page built
    from that example, e.g. MovieLens retrieved impressions) is p: a watch in the label's second
    is before it exactly when the tie rule puts it first, so the ranker sees, byte for byte, the
    history the generator was trained and scored on;
  - a query at time t with no position (a logged impression, a serving request) is the number of
    watches with timestamp < t: a watch in the same second is never before it. A click's watch
    can be logged at its impression's second, and it must not leak into its own page's features;
    and events of one second have no order to tell whether a watch preceded the page. This is
    the history the generator gets for a request at t, which sees only watches logged before t.

The same rule on searches (their cut is the number of searches strictly before the query time)
gives both stages their search tokens. Everything here is vectorised binary searches and ranges.
"""
import numpy as np
import numpy.typing as npt

from tfrec.features.ragged import ranges


def cuts_at_times(sorted_keys: npt.ArrayLike, query_keys: npt.ArrayLike) -> np.ndarray:
    """[m] int64 cut of a query at a time: the number of events with a key < the query's key.

    Args:
      sorted_keys: [n] ascending event keys: timestamps of one user's events, or (user, time)
        keys of many users' (`ranking_examples._Keys`), so a cut is then a row of the table.
      query_keys: [m] keys of the queries in the same encoding.
    Returns:
      [m] cuts: an event in the query's second (same key) is not before it.
    """
    return np.searchsorted(sorted_keys, query_keys, side="left").astype(np.int64)


def rows_before(cuts: npt.ArrayLike, max_len: int, starts: npt.ArrayLike = 0
                ) -> tuple[np.ndarray, np.ndarray]:
    """The (up to `max_len`) rows before each cut, newest first: the history of each query.

    Args:
      cuts: [m] int: row after the query's last earlier event (exclusive end).
      max_len: most recent rows kept.
      starts: [m] int (or a scalar): the query's user's first row; 0 for one user's table.
    Returns:
      (flat row indices [sum(lengths)], lengths [m]): rows cuts-1, cuts-2, ... down to starts.
    """
    cuts = np.asarray(cuts, dtype=np.int64)
    lengths = np.minimum(cuts - starts, max_len)
    return ranges(cuts - 1, lengths, step=-1), lengths


def last_row_before(row_groups: npt.ArrayLike, query_groups: npt.ArrayLike,
                    cuts: npt.ArrayLike) -> np.ndarray:
    """[m] the last row of the query's group before its cut (row < cut), or -1 if none.

    Args:
      row_groups: [n] int group of each row of an ordered table (e.g. user x channel of each
        watch, rows in watch order); < 0 = unknown, never matched.
      query_groups: [m] int group of each query (< 0: no match).
      cuts: [m] int rows before the cut are before the query (same table).
    Returns:
      [m] int64 row index or -1.
    """
    row_groups = np.asarray(row_groups, dtype=np.int64)
    query_groups = np.asarray(query_groups, dtype=np.int64)
    rows = np.flatnonzero(row_groups >= 0)
    if len(rows) == 0:
        return np.full(len(query_groups), -1, np.int64)
    span = len(row_groups) + 1
    if int(row_groups.max()) >= (2 ** 62) // span:
        raise ValueError("too many groups x rows for int64 keys")
    # Key (group, row) sorts each group's rows in table order; a query's key is (group, cut).
    keys = row_groups[rows] * span + rows
    order = np.argsort(keys, kind="stable")
    keys, rows = keys[order], rows[order]
    found = np.searchsorted(keys, np.maximum(query_groups, 0) * span + cuts, side="left") - 1
    safe = np.maximum(found, 0)
    hit = (found >= 0) & (row_groups[rows[safe]] == query_groups) & (query_groups >= 0)
    return np.where(hit, rows[safe], -1)


def earlier_in_group(groups: npt.ArrayLike, *moment: npt.ArrayLike) -> np.ndarray:
    """[n] how many rows of the same group have a strictly earlier moment.

    Args:
      groups: [n] int group of each row (e.g. user x video of each impression).
      *moment: [n] arrays, compared lexicographically (e.g. timestamp, then cut): rows with an
        equal moment are not earlier than each other.
    Returns:
      [n] int64 counts.
    """
    groups = np.asarray(groups)
    n = len(groups)
    if n == 0:
        return np.zeros(0, np.int64)
    columns = [groups, *(np.asarray(m) for m in moment)]
    order = np.lexsort(columns[::-1])  # lexsort's last key is the primary one
    sorted_cols = [c[order] for c in columns]
    index = np.arange(n)
    new_group = np.r_[True, sorted_cols[0][1:] != sorted_cols[0][:-1]]
    new_moment = new_group.copy()
    for col in sorted_cols[1:]:
        new_moment[1:] |= col[1:] != col[:-1]
    # Each row's count = first row of its (group, moment) run - first row of its group.
    first_of_moment = np.maximum.accumulate(np.where(new_moment, index, 0))
    first_of_group = np.maximum.accumulate(np.where(new_group, index, 0))
    out = np.empty(n, np.int64)
    out[order] = first_of_moment - first_of_group
    return out
