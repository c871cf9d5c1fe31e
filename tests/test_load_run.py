"""tfrec.load_run: a finished run's config, metrics and trained Keras models, on one tiny run of
the real pipeline (generator and ranker, exported), checked against the run's own servables."""
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import tfrec
from conftest import make_events, three_taste_watches
from tiny_pipeline import TINY_RANKING, write_tiny_pipeline
from tfrec.config import load_config
from tfrec.data.schema import write_events
from tfrec.pipeline import run_pipeline
from tfrec.runs import RunError

H = 5


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """The folder of one tiny pipeline run (30 users x 12 watches; generator and ranker)."""
    root = tmp_path_factory.mktemp("tiny_run")
    write_events(make_events(three_taste_watches()), str(root / "events"))
    write_tiny_pipeline(root / "tiny.yaml", root / "events", root / "saved_models",
                        {"ranking": TINY_RANKING})
    run_pipeline(load_config(str(root / "tiny.yaml")), runs_dir=str(root / "runs"),
                 log=lambda *_: None, report=False)
    return root / "runs" / "tiny"


@pytest.fixture(scope="module")
def run(tiny_run):
    return tfrec.load_run(str(tiny_run))


def _copy(tiny_run, tmp_path):
    """A copy of the run folder, to break without touching the shared one."""
    return shutil.copytree(tiny_run, tmp_path / "runs" / "tiny")


def _tower_request(run, n=6, seed=0):
    """{input: [n, ...] numpy} of the user tower: histories of 0..H known videos (padded with
    ""), example ages within the training range."""
    rng = np.random.default_rng(seed)
    ids = run.candidate_generator.video_ids
    history = np.full((n, H), "", dtype=object)
    for row in range(n):
        length = row % (H + 1)
        history[row, :length] = rng.choice(ids, length, replace=False)
    with open(run.path + "/candidate_generation/weights/model.artifacts.json") as f:
        max_age = json.load(f)["max_example_age_seconds"]
    return {"watch_history": history,
            "example_age": rng.uniform(0, max_age, n).astype(np.float32)}


def _ranker_request(run, n=8, seed=0):
    """{input: [n, ...] numpy} of the ranker: known videos and histories, each continuous
    input spread over (and a little beyond) its training range, 0/1 indicators."""
    rng = np.random.default_rng(seed)
    with open(run.path + "/ranking/weights/ranker.artifacts.json") as f:
        artifacts = json.load(f)
    ids = np.asarray(artifacts["video_ids"], dtype=object)
    continuous = dict(zip(
        [n for n in run.ranker.scorer.input if n not in ("video_id", "watch_history",
                                                         "user_language", "video_language",
                                                         "never_watched_channel",
                                                         "never_watched_topic")],
        artifacts["boundaries"]))
    request = {}
    for name in run.ranker.scorer.input:
        if name == "video_id":
            request[name] = rng.choice(ids, n)
        elif name == "watch_history":
            request[name] = rng.choice(ids, (n, H))
        elif name in ("user_language", "video_language"):
            request[name] = np.full(n, artifacts["languages"][0], dtype=object)
        elif name.startswith("never_watched"):
            request[name] = rng.integers(0, 2, n).astype(np.float32)
        else:
            low, high = continuous[name][0], continuous[name][-1]
            request[name] = rng.uniform(low - 1, high + 1 + (high - low) * 0.1,
                                        n).astype(np.float32)
    return request


def _serve(folder, request):
    """{output: numpy} of a saved servable's serving_default signature."""
    fn = tf.saved_model.load(str(folder)).signatures["serving_default"]
    return {k: v.numpy() for k, v in fn(**{k: tf.constant(v) for k, v in request.items()}).items()}


def test_config_and_metrics_are_the_runs(run, tiny_run):
    assert run.config == load_config(str(tiny_run / "config.yaml"))
    assert run.config.candidate_generation.tower.hidden_units == (16, 8)
    assert run.metrics == json.loads((tiny_run / "metrics.json").read_text())
    assert run.metrics["retrieval"]["epochs_run"] == 2 and "ranking" in run.metrics
    assert repr(run) == f"Run({str(tiny_run)!r}: candidate_generator, ranker)"


def test_user_tower_and_retrieval_equal_the_exported_servables(run, tiny_run):
    request = _tower_request(run)
    u = run.user_tower(request, training=False).numpy()
    assert u.shape == (6, 8)
    exported = _serve(tiny_run / "export" / "servables" / "user_tower", request)
    np.testing.assert_allclose(u, exported["user_vector"], rtol=1e-6, atol=1e-6)
    # The output embeddings and biases too: exact top-k over the corpus, history excluded.
    ids, table = run.candidate_generator.candidate_table()
    scores = run.candidate_generator.query_vectors(request) @ table.T
    for row, history in enumerate(request["watch_history"]):
        scores[row, np.isin(ids, history)] = -np.inf
    top = np.argsort(-scores, axis=1, kind="stable")[:, :10]
    served = _serve(tiny_run / "export" / "servables" / "retrieval_brute_force", request)
    assert np.char.decode(served["video_ids"].astype(bytes)).tolist() == ids[top].tolist()
    np.testing.assert_allclose(served["scores"], np.take_along_axis(scores, top, 1),
                               rtol=1e-6, atol=1e-6)


def test_ranker_predictions_equal_the_exported_ranker(run, tiny_run):
    request = _ranker_request(run)
    mine = {k: v.numpy() for k, v in run.ranker(request, training=False).items()}
    served = _serve(tiny_run / "ranking" / "servables" / "ranker", request)
    assert set(mine) == set(served) == {"logit", "expected_watch_time", "click_probability",
                                        "expected_watch_time_corrected"}
    for name in mine:
        np.testing.assert_allclose(mine[name], served[name], rtol=1e-6, atol=1e-6)
    assert np.ptp(mine["logit"]) > 0  # the inputs reach the tower: not a constant
    # Calibrated as the stage calibrated it (Platt scaling on validation).
    calibration = run.metrics["ranking"]["logit_calibration"]
    assert run.ranker.logit_scale.numpy() == pytest.approx(calibration["scale"], rel=1e-6)


def test_summaries_work(run):
    for model, name in ((run.candidate_generator, "user_tower"), (run.user_tower, "relu_1"),
                        (run.ranker, "ranking_scorer")):
        lines = []
        model.summary(print_fn=lines.append)
        assert any(name in line for line in lines)
        assert model.count_params() > 0


def test_one_fine_tuning_step_changes_the_weights(tiny_run):
    run = tfrec.load_run(str(tiny_run))  # its own copy: fitting changes the weights
    features = dict(_tower_request(run, n=8), video_id=run.candidate_generator.video_ids[:8])
    generator = run.candidate_generator
    generator.compile(optimizer=tf.keras.optimizers.Adam(0.01))
    before = [w.numpy().copy() for w in generator.trainable_weights]
    history = generator.fit(tf.data.Dataset.from_tensor_slices(features).batch(8), verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert any(not np.array_equal(b, w.numpy())
               for b, w in zip(before, generator.trainable_weights))

    request = _ranker_request(run, n=16)
    clicked = (np.arange(16) % 2).astype(np.float32)
    ranker_features = dict(request, clicked=clicked, watch_time=clicked * 30.0)
    run.ranker.compile(optimizer=tf.keras.optimizers.Adam(0.01))
    before = [w.numpy().copy() for w in run.ranker.trainable_weights]
    history = run.ranker.fit(tf.data.Dataset.from_tensor_slices(ranker_features).batch(16),
                             verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert any(not np.array_equal(b, w.numpy())
               for b, w in zip(before, run.ranker.trainable_weights))


FRESH = r'''
import json, sys
import numpy as np
import tfrec
assert "tensorflow" not in sys.modules  # `import tfrec` stays cheap; load_run imports it
run = tfrec.load_run(sys.argv[1])
request = json.loads(sys.stdin.read())
u = run.user_tower({"watch_history": np.array(request["watch_history"], dtype=object),
                    "example_age": np.array(request["example_age"], np.float32)}, training=False)
print(json.dumps(u.numpy().tolist()))
'''


def test_loads_in_a_fresh_process_without_the_examples(run, tiny_run, tmp_path):
    folder = _copy(tiny_run, tmp_path)
    shutil.rmtree(folder / "examples")  # the training examples are not needed
    request = _tower_request(run)
    out = subprocess.run([sys.executable, "-c", FRESH, str(folder)], capture_output=True,
                         text=True, input=json.dumps({k: v.tolist() for k, v in request.items()}))
    assert out.returncode == 0, out.stderr[-3000:]
    got = np.array(json.loads(out.stdout.strip().splitlines()[-1]))
    np.testing.assert_allclose(got, run.user_tower(request, training=False).numpy(),
                               rtol=1e-6, atol=1e-6)


def test_a_folder_that_is_not_a_run(tiny_run, tmp_path):
    with pytest.raises(RunError, match=r"no such run folder"):
        tfrec.load_run(str(tmp_path / "missing"))
    with pytest.raises(RunError) as err:
        tfrec.load_run(str(tmp_path))
    assert f"{tmp_path} is not a run folder: {tmp_path}/config.yaml is missing" in str(err.value)
    # The runs folder itself: the message names the run inside it.
    with pytest.raises(RunError) as err:
        tfrec.load_run(str(tiny_run.parent))
    assert f"run folders inside it: {tiny_run}" in str(err.value)


def test_a_run_whose_generator_has_not_finished(tiny_run, tmp_path):
    folder = _copy(tiny_run, tmp_path)
    (folder / "candidate_generation" / "stage.json").unlink()
    with pytest.raises(RunError) as err:
        tfrec.load_run(str(folder))
    assert (f"the candidate_generation stage has not finished "
            f"({folder}/candidate_generation/stage.json is missing)") in str(err.value)
    assert f"tfrec run {folder}/config.yaml --runs-dir {folder.parent}" in str(err.value)
    # Finished, but the weights were deleted since.
    folder = _copy(tiny_run, tmp_path / "2")
    shutil.rmtree(folder / "candidate_generation" / "weights")
    with pytest.raises(RunError, match=r"finished but its saved model is missing .*"
                                       r"candidate_generation/weights/model.index"):
        tfrec.load_run(str(folder))


def test_a_generator_made_for_another_config(tiny_run, tmp_path):
    """A later `tfrec run` rewrote config.yaml (a wider tower) and did not finish: the models on
    disk are not that config's."""
    folder = _copy(tiny_run, tmp_path)
    config = folder / "config.yaml"
    config.write_text(config.read_text().replace("embedding_dim: 8\n", "embedding_dim: 16\n", 1))
    with pytest.raises(RunError, match=r"the candidate_generation stage's outputs were not made "
                                       r"for .*config.yaml \(out of date: candidate_generation"):
        tfrec.load_run(str(folder))


def test_ranker_unfinished_or_off(tiny_run, tmp_path):
    folder = _copy(tiny_run, tmp_path)
    shutil.rmtree(folder / "ranking")
    with pytest.raises(RunError) as err:
        tfrec.load_run(str(folder))
    assert "the ranking stage has not finished" in str(err.value)
    assert f"load_run({str(folder)!r}, ranker=False)" in str(err.value)
    assert tfrec.load_run(str(folder), ranker=False).ranker is None
    # A run whose config has no ranker (the generator's key does not read that section).
    config = folder / "config.yaml"
    config.write_text(config.read_text().replace("ranking:\n  enabled: true",
                                                 "ranking:\n  enabled: false"))
    run = tfrec.load_run(str(folder))
    assert run.ranker is None and repr(run).endswith(": candidate_generator)")
