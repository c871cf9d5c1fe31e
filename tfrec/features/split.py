"""The P1 next-watch split (docs/PROTOCOL.md): per user, last watch = test, second-to-last =
validation, everything before = training. Users with fewer than 3 watches have no held-out
targets: all their watches are training watches."""
import numpy as np

TRAIN, VALIDATION, TEST = 0, 1, 2
ROLE_NAMES = {TRAIN: "train", VALIDATION: "validation", TEST: "test"}
MIN_WATCHES_FOR_HOLDOUT = 3


def next_watch_roles(user_ids):
    """[n] int8 role of each watch (TRAIN, VALIDATION or TEST).

    Args:
      user_ids: [n] user id of each watch, rows already in `order_watches` order (users contiguous).
    """
    user_ids = np.asarray(user_ids)
    n = len(user_ids)
    roles = np.zeros(n, dtype=np.int8)
    if n == 0:
        return roles
    starts = np.flatnonzero(np.r_[True, user_ids[1:] != user_ids[:-1]])
    ends = np.r_[starts[1:], n]
    eligible = (ends - starts) >= MIN_WATCHES_FOR_HOLDOUT
    roles[ends[eligible] - 1] = TEST
    roles[ends[eligible] - 2] = VALIDATION
    return roles
