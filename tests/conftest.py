import os

# Before anything imports TensorFlow: Keras 2 for TFRS, and quiet C++ logging.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

import tfrec  # noqa: E402,F401
from tfrec.data.schema import EventTables, coerce_table  # noqa: E402


@pytest.fixture(scope="session")
def ml100k_dir():
    """The real MovieLens-100K RecBole files, fetched from PyPI into the cache (once)."""
    from tfrec.data.fetch import fetch_movielens_100k
    return fetch_movielens_100k(log=lambda *_: None)


def three_taste_watches(users=30, per_user=12, seed=0):
    """(user, video, timestamp) watches with something to learn: user u watches videos of
    group u % 3 (30 videos in all), one per second."""
    rng = np.random.default_rng(seed)
    return [(f"u{u}", f"v{3 * rng.integers(0, 10) + u % 3}", t) for u in range(users)
            for t in range(per_user)]


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


# Prepended to the code a fresh process runs to load an export: any tfrec import fails there.
BLOCK_TFREC = r'''
import importlib.abc, json, os, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == "tfrec" or name.startswith("tfrec."):
            raise ImportError("tfrec is blocked in this process")
sys.meta_path.insert(0, Block())
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import numpy as np
import tensorflow as tf
'''


def small_candidate_generator(watches, max_history):
    """(events, CandidateExamples, UserTowerConfig, trained model): a tiny candidate generator
    (history + age demographic + example age, full softmax with bias, 2 epochs) on `watches`."""
    import tensorflow as tf

    from tfrec.config import ExampleConfig, SoftmaxConfig, UserTowerConfig
    from tfrec.features.dataset import candidate_dataset
    from tfrec.features.local_driver import build_candidate_examples
    from tfrec.models.training import build_model
    events = make_events(watches)
    events.users["age"] = [str(18 + i % 3) for i in range(len(events.users))]
    ex = build_candidate_examples(events, ExampleConfig(max_history=max_history))
    tower = UserTowerConfig(embedding_dim=8, hidden_units=(16, 8), max_history=max_history,
                            features=("watch_history", "demographics", "example_age"),
                            demographic_columns=("age",))
    model = build_model(ex, events.users, events.videos["video_id"].to_numpy(), tower,
                        SoftmaxConfig(loss="full", use_bias=True))
    model.compile(optimizer=tf.keras.optimizers.Adam(0.01))
    model.fit(candidate_dataset(ex.train, 16, max_history=max_history), epochs=2, verbose=0)
    return events, ex, tower, model
