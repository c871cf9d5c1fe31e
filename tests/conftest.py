import os

# Before anything imports TensorFlow: Keras 2 for TFRS, and quiet C++ logging.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pandas as pd  # noqa: E402
import pytest  # noqa: E402

import tfrec  # noqa: E402,F401
from tfrec.data.schema import EventTables, coerce_table  # noqa: E402


@pytest.fixture(scope="session")
def ml100k_dir():
    """The real MovieLens-100K RecBole files, fetched from PyPI into the cache (once)."""
    from tfrec.data.fetch import fetch_movielens_100k
    return fetch_movielens_100k(log=lambda *_: None)


def make_events(watches, users=None, videos=None, searches=None):
    """EventTables from lists of tuples: watches (user, video, timestamp[, watch_time])."""
    rows = [w if len(w) == 4 else (*w, 1.0) for w in watches]
    w = pd.DataFrame(rows, columns=["user_id", "video_id", "timestamp", "watch_time"])
    users = users or sorted({str(r[0]) for r in rows})
    videos = videos or sorted({str(r[1]) for r in rows})
    tables = dict(
        watches=coerce_table(w, "watches", "watches"),
        users=coerce_table(pd.DataFrame({"user_id": users}), "users", "users"),
        videos=coerce_table(pd.DataFrame({"video_id": videos}), "videos", "videos"),
    )
    if searches:
        s = pd.DataFrame(searches, columns=["user_id", "timestamp", "query"])
        tables["searches"] = coerce_table(s, "searches", "searches")
    return EventTables(**tables).validated()
