"""P3, the global time split (docs/PROTOCOL.md): one cut for everyone, queries as served."""

import numpy as np
import pandas as pd
import pytest

from conftest import make_events
from tfrec.config import EvaluationConfig, ExampleConfig
from tfrec.evaluation.freshness import age_buckets, age_profile, bucket_names, fresh_targets
from tfrec.features.example_set import ExampleSet
from tfrec.features.local_driver import build_candidate_examples
from tfrec.features.ragged import Ragged
from tfrec.features.split import (CONTEXT, TEST, TRAIN, VALIDATION, TimeWindows,
                                  time_split_roles, time_windows)


def test_roles_first_watch_in_each_window_of_users_seen_before_it():
    users = np.array(list("aaaabbbcc"))
    times = np.array([1, 2, 5, 8, 6, 7, 9, 1, 2])
    roles = time_split_roles(users, times, TimeWindows(validation_start=5, test_start=8))
    # a: 5 is its first validation-window watch, 8 its first test one. b has no watch before
    # the validation window (its watches there are context) but has one before the test window.
    assert roles.tolist() == [TRAIN, TRAIN, VALIDATION, TEST, CONTEXT, CONTEXT, TEST,
                              TRAIN, TRAIN]


def test_windows_by_days_and_by_quantiles_never_split_a_second():
    days = time_windows(np.array([0, 86_400 * 20]), window_days=7)
    assert days.test_start == 86_400 * 20 + 1 - 7 * 86_400
    assert days.validation_start == days.test_start - 7 * 86_400
    assert time_windows(np.arange(100), None, 0.05) == TimeWindows(90, 95)
    tied = time_windows(np.array([0] * 5 + [1] * 90 + [2] * 5), None, 0.05)
    assert tied.validation_start in (1, 2) and tied.test_start == 2


P3 = EvaluationConfig(protocol="p3", p3_window_days=None, p3_window_share=0.1)


def _events():
    # 10 users, one watch a second each, 10 seconds: windows [8, 9) and [9, end].
    rng = np.random.default_rng(0)
    return make_events([(f"u{u}", f"v{rng.integers(0, 15)}", t) for u in range(10)
                        for t in range(10)])


def test_p3_examples_train_only_before_the_cut_and_query_as_served():
    ex = build_candidate_examples(_events(), ExampleConfig(), protocol=P3)
    w = ex.windows
    assert (w.validation_start, w.test_start) == (8, 9)
    assert ex.train["timestamp"].max() < w.validation_start == ex.end_of_training + 1
    assert (ex.train_watches["timestamp"] < w.validation_start).all()
    for split, start in (("validation", w.validation_start), ("test", w.test_start)):
        q = getattr(ex, split)
        assert len(q) == 10 and (q["timestamp"] == start).all()  # one query per user
        assert (q["example_age"] == 0).all()
        # The history is every earlier watch (the validation-window one included for test),
        # the exclusions all of them.
        assert (q["watches_before"] == start).all()
        assert (q["exclusions"].lengths == start).all()
    # Ranker pages: every watch inside each window with an earlier one.
    assert len(ex.window_queries["validation_window"]) == 10
    assert len(ex.window_queries["test_window"]) == 10


def test_p3_needs_targets_in_both_windows():
    events = make_events([("u", "a", 1), ("u", "b", 2), ("u", "c", 3)])
    from tfrec.data.errors import DataError
    with pytest.raises(DataError, match="P3 time split"):
        build_candidate_examples(events, ExampleConfig(),
                                 protocol=P3.model_copy(update={"p3_window_days": 30.0}))


def test_age_buckets_and_the_fresh_slice():
    day = 86_400
    assert age_buckets(np.array([-5, 0, day - 1, day, 3 * day, 60 * day])).tolist() == \
        [0, 1, 1, 2, 3, 8]
    assert len(bucket_names()) == 9
    videos = pd.DataFrame({"video_id": ["old", "new"], "upload_timestamp": [0, 9 * day]})
    queries = ExampleSet({"label": np.array(["old", "new"], dtype=object),
                          "timestamp": np.array([10 * day, 10 * day])})
    assert fresh_targets(queries, videos).tolist() == [False, True]


def test_age_profile_counts_the_top_slots_by_age():
    day = 86_400
    videos = pd.DataFrame({"video_id": ["a", "b", "c", "d"],
                           "upload_timestamp": [0, 9 * day, 9 * day, 20 * day]})
    queries = ExampleSet({
        "label": np.array(["a", "b"], dtype=object), "timestamp": np.array([10 * day] * 2),
        "exclusions": Ragged(np.array(["c"], dtype=object), np.array([1, 0]))})
    scores = np.array([[4.0, 3.0, 9.0, 1.0],   # c excluded: top 2 = a (10 days), b (1 day)
                       [0.0, 1.0, 2.0, 3.0]])  # top 2 = d (not yet uploaded), c (1 day)
    got = age_profile(lambda s, e: scores[s:e], queries, ["a", "b", "c", "d"], videos, k=2)
    share = dict(zip(got["buckets"], got["recommended_share"]))
    assert share == pytest.approx({**{b: 0.0 for b in got["buckets"]}, "not yet uploaded": 0.25,
                                   "1-2d": 0.5, "7-14d": 0.25})
    targets = dict(zip(got["buckets"], got["target_share"]))
    assert targets["7-14d"] == targets["1-2d"] == 0.5


def test_cross_fitted_folds_never_score_their_own_users(ml100k_dir):
    from tfrec.data.movielens import read_recbole
    from tfrec.models.cross_fitting import fold_examples, scoring_fold, user_folds
    ex = build_candidate_examples(read_recbole(ml100k_dir), ExampleConfig())
    users = np.unique(ex.train["user_id"])
    folds = user_folds(users)
    assert 0.4 < folds.mean() < 0.6  # two halves of the 943 users
    seen = [set(fold_examples(ex, k).train["user_id"]) for k in (0, 1)]
    assert not seen[0] & seen[1] and len(seen[0] | seen[1]) == len(users)
    for user, fold in zip(users, scoring_fold(users)):
        assert user not in seen[fold]
