"""The held-out splits of docs/PROTOCOL.md, as a role for every watch.

P1 (`next_watch_roles`): per user, last watch = test, second-to-last = validation, everything
before = training. Users with fewer than 3 watches have no held-out targets: all their watches
are training watches.

P3 (`time_split_roles`): one cut for everyone. Watches before the validation window are training
watches; a user's first watch inside the validation window is a validation target when the user
has a training watch, and the first watch inside the test window is a test target when the user
has any watch before the test window. Every other watch at or after the cut is CONTEXT: never a
label, but history of the queries after it (serving sees everything logged before a request).
"""
import dataclasses
from typing import Any

import numpy as np
import numpy.typing as npt

TRAIN, VALIDATION, TEST, CONTEXT = 0, 1, 2, 3
ROLE_NAMES = {TRAIN: "train", VALIDATION: "validation", TEST: "test", CONTEXT: "context"}
MIN_WATCHES_FOR_HOLDOUT = 3
PROTOCOLS = ("p1", "p3")
DAY = 86_400


def user_bounds(sorted_user_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(starts [u], ends [u]) int64 row range of each user in rows with users contiguous."""
    n = len(sorted_user_ids)
    if n == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    starts = np.flatnonzero(np.r_[True, sorted_user_ids[1:] != sorted_user_ids[:-1]])
    return starts, np.r_[starts[1:], n]


def next_watch_roles(user_ids: npt.ArrayLike) -> np.ndarray:
    """[n] int8 role of each watch (TRAIN, VALIDATION or TEST) under P1.

    Args:
      user_ids: [n] user id of each watch, rows already in `order_watches` order (users
        contiguous).
    """
    user_ids = np.asarray(user_ids)
    roles = np.zeros(len(user_ids), dtype=np.int8)
    starts, ends = user_bounds(user_ids)
    eligible = (ends - starts) >= MIN_WATCHES_FOR_HOLDOUT
    roles[ends[eligible] - 1] = TEST
    roles[ends[eligible] - 2] = VALIDATION
    return roles


@dataclasses.dataclass(frozen=True)
class TimeWindows:
    """The P3 cut, in seconds: validation = [validation_start, test_start), test = [test_start,
    end]."""

    validation_start: int
    test_start: int

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def time_windows(timestamps: npt.ArrayLike, window_days: float | None = None,
                 window_share: float = 0.05) -> TimeWindows:
    """The P3 windows of a log: the last `window_days` days are test and the days before
    validation, or (window_days None) by quantiles of all watch timestamps: test = the last
    `window_share` of the watches, validation = the share before.

    Args:
      timestamps: [n] int64 watch timestamps (s).
    Returns:
      TimeWindows.
    """
    seconds, counts = np.unique(np.asarray(timestamps, np.int64), return_counts=True)
    return time_windows_of_counts(seconds, counts, window_days, window_share)


def _quantile_of_counts(values: np.ndarray, counts: np.ndarray, q: float) -> float:
    """np.quantile (linear) of the data set holding counts[i] copies of values[i] (ascending,
    distinct), bit for bit: the same virtual index and the same interpolation of its two
    neighbours."""
    n = int(counts.sum())
    index = (n - 1) * np.float64(q)
    below = int(np.floor(index))
    ends = np.cumsum(counts)  # value i holds sorted positions [ends[i] - counts[i], ends[i])
    lo, hi = np.searchsorted(ends, [below, min(below + 1, n - 1)], side="right")
    return float(np.quantile(np.array([values[lo], values[hi]], np.float64), index - below))


def time_windows_of_counts(seconds: np.ndarray, counts: np.ndarray,
                           window_days: float | None = None,
                           window_share: float = 0.05) -> TimeWindows:
    """`time_windows` from the distinct watch seconds [s] (ascending int64) and the number of
    watches at each [s]: what a distributed driver can gather (`tfrec.features.beam_driver`)."""
    if window_days is not None:
        end = int(seconds.max()) + 1
        width = int(round(window_days * DAY))
        return TimeWindows(end - 2 * width, end - width)
    lo, hi = (_quantile_of_counts(seconds, counts, q)
              for q in (1 - 2 * window_share, 1 - window_share))
    # A window starts at a whole second strictly after the quantile, so ties at the quantile
    # stay on the earlier side (a cut never splits one second).
    return TimeWindows(int(np.floor(lo)) + 1, int(np.floor(hi)) + 1)


def time_split_roles(user_ids: npt.ArrayLike, timestamps: npt.ArrayLike, windows: TimeWindows
                     ) -> np.ndarray:
    """[n] int8 role of each watch under P3 (TRAIN, VALIDATION, TEST or CONTEXT).

    Args:
      user_ids: [n] user id of each watch, in `order_watches` order (users contiguous).
      timestamps: [n] int64 seconds, ascending within each user.
      windows: TimeWindows.
    """
    user_ids = np.asarray(user_ids)
    timestamps = np.asarray(timestamps, np.int64)
    roles = np.full(len(user_ids), CONTEXT, dtype=np.int8)
    roles[timestamps < windows.validation_start] = TRAIN
    starts, ends = user_bounds(user_ids)
    user_index = np.repeat(np.arange(len(starts)), ends - starts)
    for lo, hi, role in ((windows.validation_start, windows.test_start, VALIDATION),
                         (windows.test_start, None, TEST)):
        has_before = np.bincount(user_index[timestamps < lo], minlength=len(starts)) > 0
        # A user's rows are in time order: the first of their rows at or after `lo` is the
        # first watch in the window when it falls before `hi`.
        later = np.flatnonzero(timestamps >= lo)
        owner = user_index[later]
        first = later[np.r_[True, owner[1:] != owner[:-1]]] if len(later) else later
        ok = has_before[user_index[first]]
        if hi is not None:
            ok &= timestamps[first] < hi
        roles[first[ok]] = role
    return roles


def watch_roles(user_ids: npt.ArrayLike, timestamps: npt.ArrayLike,
                windows: TimeWindows | None) -> np.ndarray:
    """[n] int8 role of each watch (rows in `order_watches` order): P3 (`time_split_roles`) when
    `windows` is set, else P1 (`next_watch_roles`). Per user: one user's rows alone get the roles
    they get inside the whole table."""
    if windows is not None:
        return time_split_roles(user_ids, timestamps, windows)
    return next_watch_roles(user_ids)
