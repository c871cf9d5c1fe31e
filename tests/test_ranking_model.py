"""The ranker learns what the paper claims: exp(logit) of the watch-time-weighted LR estimates
expected watch time (also when negatives are subsampled), ranking by it beats ranking by click
probability when clicks and watch time disagree, and the export answers without tfrec."""
import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from conftest import BLOCK_TFREC
from ranking_fixture import simulated_world
from tfrec.config import RankingConfig
from tfrec.data.schema import EventTables, coerce_table
from tfrec.features.ranking_examples import build_ranking_examples, split_by_time
from tfrec.models.ranking_training import predict_ranker, ranking_features, train_ranker
from tfrec.serving.ranker_export import export_ranker

QUIET = dict(log=lambda *_: None)


def _page_world(pages=4000, seed=0):
    """Every page shows the same 8 videos; video j is clicked with p_j and watched m_j seconds."""
    rng = np.random.default_rng(seed)
    n_videos = 8
    p, m = np.linspace(0.05, 0.3, n_videos), np.linspace(100, 20, n_videos)
    user = np.repeat(rng.integers(0, 50, pages), n_videos)
    video = np.tile(np.arange(n_videos), pages)
    clicked = (rng.random(len(video)) < p[video]).astype(int)
    imp = pd.DataFrame({"user_id": [f"u{i}" for i in user], "video_id": [f"v{i}" for i in video],
                        "timestamp": np.repeat(np.arange(pages), n_videos),
                        "position": np.tile(np.arange(n_videos), pages), "clicked": clicked,
                        "watch_time": np.where(clicked, m[video], 0.0)})
    events = EventTables(
        watches=coerce_table(imp.loc[imp.clicked == 1, ["user_id", "video_id", "timestamp",
                                                         "watch_time"]], "watches", "w"),
        users=coerce_table(pd.DataFrame({"user_id": [f"u{i}" for i in range(50)]}), "users", "u"),
        videos=coerce_table(pd.DataFrame({"video_id": [f"v{i}" for i in range(n_videos)]}),
                            "videos", "v"),
        impressions=imp).validated()
    return events, p


def test_exp_logit_is_the_watch_time_odds_and_negative_subsampling_is_corrected():
    events, p = _page_world()
    examples = build_ranking_examples(events, max_history=2)
    train, validation, _ = split_by_time(examples, 0.2, 0.0)
    frame = pd.DataFrame({"v": train["video_id"], "c": train["clicked"], "w": train["watch_time"]})
    probe = examples.take(np.unique(examples["video_id"], return_index=True)[1])
    sums = frame.groupby("v").agg(w=("w", "sum"), neg=("c", lambda c: (c == 0).sum()))
    odds = (sums["w"] / sums["neg"]).reindex(probe["video_id"]).to_numpy()
    got = {}
    for rate in (1.0, 0.5):
        config = RankingConfig(features=("video_id",), hidden_units=(), embedding_dim=4,
                               max_history=2, epochs=15, patience=15, batch_size=1024,
                               learning_rate=0.03, negative_subsample_rate=rate,
                               selection_metric="weighted_logistic_loss")
        model, result = train_ranker(train, validation, config, events.videos["video_id"],
                                     **QUIET)
        assert result["train_impressions_used"] < 0.8 * len(train) if rate < 1 else True
        got[rate] = predict_ranker(model, probe)
    full = got[1.0]["expected_watch_time"]
    # The optimum of the weighted loss: odds = sum of watch time / number of negatives.
    assert np.all(np.abs(np.log(full / odds)) < 0.15), full / odds
    ratio = got[0.5]["expected_watch_time"] / full
    assert np.all(np.abs(np.log(ratio)) < 0.15), ratio
    assert abs(np.mean(np.log(ratio))) < 0.06
    # Without the + log(r) correction the subsampled model would say twice the watch time.
    assert np.all(ratio / 0.5 > 1.6)
    np.testing.assert_allclose(got[0.5]["click_probability"], p, rtol=0.2)


def test_every_impression_a_negative_learns_the_expected_watch_time_itself():
    # Click rates up to 0.3: the paper's odds would overshoot E[T] by up to 1 / (1 - 0.3).
    events, p = _page_world()
    examples = build_ranking_examples(events, max_history=2)
    train, validation, _ = split_by_time(examples, 0.2, 0.0)
    probe = examples.take(np.unique(examples["video_id"], return_index=True)[1])
    frame = pd.DataFrame({"v": train["video_id"], "w": train["watch_time"]})
    expected = frame.groupby("v")["w"].mean().reindex(probe["video_id"]).to_numpy()  # E[T]
    config = RankingConfig(features=("video_id",), hidden_units=(), embedding_dim=4,
                           max_history=2, epochs=15, patience=15, batch_size=1024,
                           learning_rate=0.03, negatives="all_impressions",
                           negative_subsample_rate=0.5, calibrate=False,
                           selection_metric="weighted_logistic_loss")
    model, _ = train_ranker(train, validation, config, events.videos["video_id"], **QUIET)
    out = predict_ranker(model, probe)
    # Negatives kept with probability 1/2 weigh 2: exp(logit) is E[T], not 2 E[T] nor the odds.
    assert np.all(np.abs(np.log(out["expected_watch_time"] / expected)) < 0.15), \
        out["expected_watch_time"] / expected
    assert "expected_watch_time_corrected" not in out  # nothing to correct
    np.testing.assert_allclose(out["click_probability"], p, rtol=0.2)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    events = simulated_world(n_users=150, pages_per_user=30)
    examples = build_ranking_examples(events, max_history=10)
    train, validation, test = split_by_time(examples)
    common = dict(features=("video_id", "watch_history", "language", "continuous"),
                  hidden_units=(16,), embedding_dim=8, max_history=10, epochs=6, patience=3,
                  batch_size=512, learning_rate=0.003, selection_metric="weighted_logistic_loss")
    videos = events.videos["video_id"]
    weighted = train_ranker(train, validation, RankingConfig(**common), videos, test,
                            "true_expected_watch_time", **QUIET)
    clicks = train_ranker(train, validation, RankingConfig(**common, weighted=False), videos,
                          test, "true_expected_watch_time", **QUIET)
    return weighted, clicks, test


def test_watch_time_weighting_beats_click_training_and_is_calibrated(trained):
    (_, weighted), (_, clicks), test = trained
    w, c = weighted["test"], clicks["test"]
    # The clickbait world: ranking by expected watch time loses much less watch time.
    assert w["weighted_per_user_loss"] < 0.93 * c["weighted_per_user_loss"], (w, c)
    # ... while the click-trained model is the better click predictor.
    assert c["click_auc"] > w["click_auc"]
    cal = w["calibration"]
    assert 0.75 < cal["slope"] < 1.3 and cal["r2"] > 0.6, cal
    assert 0.75 < w["calibration_corrected"]["slope"] < 1.35
    assert c["calibration"]["r2"] < 0.4  # click odds are not watch times
    assert weighted["train_examples_per_second"] > 0 and weighted["best_epoch"] >= 1


LOADER = BLOCK_TFREC + r'''
fn = tf.saved_model.load(sys.argv[1]).signatures["serving_default"]
inputs = json.loads(sys.stdin.read())
out = fn(**{k: tf.constant(v, tf.string if isinstance(np.asarray(v).flat[0], str) else tf.float32)
            for k, v in inputs.items()})
print(json.dumps({k: v.numpy().tolist() for k, v in out.items()}))
'''


def test_ranker_export_reloads_without_tfrec_and_matches_the_model(trained, tmp_path):
    (model, _), _, test = trained
    features = ranking_features(test, list(model.scorer.input), model.config.max_history)
    path = export_ranker(model, str(tmp_path), features, {"run": "test"}, **QUIET)
    assert path.endswith("ranker/1")
    manifest = json.load(open(f"{path}/manifest.json"))
    assert manifest["inputs"]["watch_history"] == {"dtype": "string", "shape": [None, 10]}
    assert manifest["inputs"]["previous_impressions"]["dtype"] == "float32"
    rows = np.arange(5)
    inputs = {n: features[n][rows].tolist() for n in model.scorer.input}
    inputs["video_id"][0] = "never-seen"  # an unknown id still gets a finite answer
    inputs["watch_history"][1] = [""] * 10
    run = subprocess.run([sys.executable, "-c", LOADER, path], input=json.dumps(inputs),
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-3000:]
    got = json.loads(run.stdout.strip().splitlines()[-1])
    expected = model({n: np.asarray(v) for n, v in inputs.items()})
    assert set(got) == {"logit", "expected_watch_time", "click_probability",
                        "expected_watch_time_corrected"}
    for name, value in expected.items():
        np.testing.assert_allclose(got[name], value.numpy(), rtol=1e-5, atol=1e-6)
    assert np.all(np.array(got["expected_watch_time"]) > 0)
    np.testing.assert_allclose(got["expected_watch_time"], np.exp(got["logit"]), rtol=1e-5)
    with open(f"{path}/assets.extra/tf_serving_warmup_requests", "rb") as f:
        assert len(f.read()) > 100
