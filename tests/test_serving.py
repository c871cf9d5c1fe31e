"""The exports are the product: they must load and answer without tfrec, and fail safe."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from conftest import BLOCK_TFREC, small_candidate_generator, three_taste_watches
from tfrec.features.dataset import padded_features
from tfrec.serving import export as export_module
from tfrec.serving.candidate_exports import NAMES, export_candidate_generation

K = 5
H = 5
LOADER = BLOCK_TFREC + r'''
if sys.argv[2] == "scann":
    import scann  # registers the ScaNN ops; the only extra import allowed
fn = tf.saved_model.load(sys.argv[1]).signatures[sys.argv[3]]
inputs = json.loads(sys.stdin.read())
out = fn(**{k: tf.constant(v, tf.float32 if k == "example_age" else tf.string)
            for k, v in inputs.items()})
print(json.dumps({k: np.char.decode(v.numpy().astype(bytes)).tolist() if v.dtype == tf.string
                  else v.numpy().tolist() for k, v in out.items()}))
'''


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    watches = three_taste_watches()
    _, ex, _, model = small_candidate_generator(watches, H)
    features = padded_features(ex.validation, H, 64)
    base = tmp_path_factory.mktemp("saved_models")
    out = export_candidate_generation(model, str(base), features,
                                      padded_features(ex.test, H, 64), {"run": "test"}, k=K,
                                      log=lambda *_: None)
    return model, features, str(base), out


def _requests(features, rows):
    return {"watch_history": features["watch_history"][rows].astype(str).tolist(),
            "age": features["age"][rows].astype(str).tolist(),
            "example_age": features["example_age"][rows].tolist()}


def _load_and_run(path, inputs, scann=False, signature="serving_default"):
    out = subprocess.run([sys.executable, "-c", LOADER, path, "scann" if scann else "plain",
                          signature],
                         input=json.dumps(inputs), capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def _reference_top_k(model, features, rows):
    """In-process exact top-k, history excluded, from the Keras model itself."""
    u = model.query_vectors({k: v[rows] for k, v in features.items()})
    ids, table = model.candidate_table()
    scores = u @ table.T
    for r, history in enumerate(features["watch_history"][rows]):
        scores[r, np.isin(ids, history)] = -np.inf
    top = np.argsort(-scores, axis=1, kind="stable")[:, :K]
    return ids[top], np.sort(scores, 1)[:, ::-1][:, :K]


def test_brute_force_export_reloads_without_tfrec_and_matches_the_model(exported):
    model, features, _, out = exported
    rows = np.arange(6)
    got = _load_and_run(out["paths"]["retrieval_brute_force"], _requests(features, rows))
    ids, scores = _reference_top_k(model, features, rows)
    assert got["video_ids"] == ids.tolist()
    np.testing.assert_allclose(got["scores"], scores, rtol=1e-5, atol=1e-5)
    for row, history in zip(got["video_ids"], features["watch_history"][rows]):
        assert not set(row) & set(history)  # watched videos are never recommended


def test_scann_export_reloads_with_only_scann_imported(exported):
    model, features, _, out = exported
    rows = np.arange(6)
    got = _load_and_run(out["paths"]["retrieval_scann"], _requests(features, rows), scann=True)
    assert got["video_ids"] == _reference_top_k(model, features, rows)[0].tolist()


def test_user_tower_export_matches_the_model(exported):
    model, features, _, out = exported
    rows = np.arange(4)
    got = _load_and_run(out["paths"]["user_tower"], _requests(features, rows))
    expected = model.user_tower.predict({k: features[k][rows] for k in model.user_tower.input},
                                        verbose=0)
    np.testing.assert_allclose(got["user_vector"], expected, rtol=1e-5, atol=1e-5)


def test_unseen_ids_empty_history_and_padding_give_valid_outputs(exported):
    _, _, _, out = exported
    inputs = {"watch_history": [["never-seen"] + [""] * (H - 1), [""] * H, ["v1"] * H],
              "age": ["1000", "", "18"], "example_age": [0.0, 0.0, 5e6]}
    for name, scann in (("retrieval_brute_force", False), ("retrieval_scann", True)):
        got = _load_and_run(out["paths"][name], inputs, scann=scann)
        assert np.array(got["video_ids"]).shape == (3, K)
        assert np.isfinite(got["scores"]).all()
        assert "v1" not in got["video_ids"][2]


def test_exclude_watched_signature_drops_the_extra_ids(exported):
    _, features, _, out = exported
    inputs = _requests(features, np.arange(3))
    for name, scann in (("retrieval_brute_force", False), ("retrieval_scann", True)):
        plain = _load_and_run(out["paths"][name], inputs, scann=scann)
        extra = [row[:2] + [""] for row in plain["video_ids"]]  # exclude each row's top 2
        got = _load_and_run(out["paths"][name], {**inputs, "exclude_ids": extra}, scann=scann,
                            signature="exclude_watched")
        for before, after, dropped in zip(plain["video_ids"], got["video_ids"], extra):
            assert not set(after) & set(dropped[:2])
            assert after[:K - 2] == before[2:]


def test_saved_model_cli_show_and_run(exported):
    _, _, _, out = exported
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    exprs = 'watch_history=[["v3","","","",""]];age=["18"];example_age=[0.0]'
    for name in NAMES:
        show = subprocess.run([cli, "show", "--all", "--dir", out["paths"][name]],
                              capture_output=True, text=True)
        assert show.returncode == 0, show.stderr[-2000:]
        assert "serving_default" in show.stdout and "watch_history" in show.stdout
        run_args = ["run", "--dir", out["paths"][name], "--tag_set", "serve",
                    "--signature_def", "serving_default", "--input_exprs", exprs]
        if name == "retrieval_scann":  # saved_model_cli in a Python that has loaded the ops
            cmd = [sys.executable, "-c", "import sys, scann; from tensorflow.python.tools "
                   "import saved_model_cli as c; sys.argv = ['saved_model_cli'] + sys.argv[1:];"
                   " c.main()", *run_args]
        else:
            cmd = [cli, *run_args]
        run = subprocess.run(cmd, capture_output=True, text=True)
        assert run.returncode == 0, run.stderr[-2000:]
        assert "Result for output key" in run.stdout


def test_warmup_records_parse_and_manifest_and_models_config(exported):
    from tensorflow_serving.apis import prediction_log_pb2
    _, _, base, out = exported
    for name in NAMES:
        path = os.path.join(out["paths"][name], "assets.extra", "tf_serving_warmup_requests")
        records = list(tf.data.TFRecordDataset(path).as_numpy_iterator())
        assert records
        log = prediction_log_pb2.PredictionLog.FromString(records[0])
        request = log.predict_log.request
        assert request.model_spec.name == name
        assert set(request.inputs) == {"watch_history", "age", "example_age"}
        manifest = json.load(open(os.path.join(out["paths"][name], "manifest.json")))
        assert manifest["name"] == name and manifest["run"] == "test"
        assert manifest["requires_scann_ops"] == (name == "retrieval_scann")
    config = open(os.path.join(base, "models.config")).read()
    version = out["version"]
    assert all(f'name: "{n}"' in config for n in NAMES)
    assert config.count(f"model_version_policy {{ specific {{ versions: {version} }} }}") == 3
    assert {os.path.basename(p) for p in out["paths"].values()} == {str(version)}


def test_versions_increase_and_a_failed_export_leaves_nothing(exported, tmp_path, monkeypatch):
    model, _, _, _ = exported
    from tfrec.serving.candidate_exports import UserTowerServable
    module = UserTowerServable(model.user_tower)
    first = export_module.export_servable(module, str(tmp_path), "m", {})
    second = export_module.export_servable(module, str(tmp_path), "m", {})
    assert (os.path.basename(first), os.path.basename(second)) == ("1", "2")

    def crash(*args, **kwargs):
        raise RuntimeError("killed half way")

    monkeypatch.setattr(export_module, "write_warmup_requests", crash)
    with pytest.raises(RuntimeError, match="half way"):
        export_module.export_servable(module, str(tmp_path), "m", {},
                                      warmup_requests=[{"x": np.zeros(1)}])
    assert sorted(os.listdir(tmp_path / "m")) == ["1", "2"]
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".staging-")]


def test_a_model_with_non_finite_weights_is_never_exported(exported, tmp_path):
    model, _, _, _ = exported
    from tfrec.models.finite import NonFiniteError
    from tfrec.serving.candidate_exports import UserTowerServable
    weight = model.user_tower.trainable_variables[0]
    saved = weight.numpy()
    broken = saved.copy()
    broken.flat[0] = np.nan
    weight.assign(broken)
    try:
        with pytest.raises(NonFiniteError, match=r"user_tower: variable '.+' holds 1 non-finite"):
            export_module.export_servable(UserTowerServable(model.user_tower), str(tmp_path),
                                          "user_tower", {})
    finally:
        weight.assign(saved)
    assert not os.path.exists(tmp_path / "user_tower" / "1")


def test_export_killed_with_sigkill_while_saving_leaves_no_version(exported, tmp_path):
    """A real kill -9 while saving: only a hidden staging folder may remain, never a version."""
    _, _, _, out = exported
    code = (
        "import os, signal, sys\n"
        "import tfrec\n"
        "import tensorflow as tf\n"
        "from tfrec.serving import export\n"
        "def die(*a, **k):\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
        "export.write_warmup_requests = die\n"
        "module = tf.saved_model.load(sys.argv[1])\n"
        "class M(tf.Module):\n"
        "    def __init__(self, m):\n"
        "        super().__init__(); self.m = m\n"
        "        self.serve = m.signatures['serving_default']\n"
        "export.export_servable(M(module), sys.argv[2], 'killed', {}, warmup_requests=[{}])\n")
    run = subprocess.run([sys.executable, "-c", code, out["paths"]["user_tower"], str(tmp_path)],
                         capture_output=True, text=True)
    assert run.returncode == -9, run.stderr[-2000:]
    left = os.listdir(tmp_path)
    assert left and all(name.startswith(".") for name in left)
    assert not os.path.exists(tmp_path / "killed")


def test_scann_tuning_reaches_the_target_recall_with_a_real_tree():
    from tfrec.evaluation.exact_scoring import exact_top_k
    from tfrec.serving.scann_index import build_searcher, recall_against_exact, search, tune_scann
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(200, 16))
    table = (centers[rng.integers(0, 200, 30_000)] + 0.5 * rng.normal(size=(30_000, 16))) * \
        rng.lognormal(0, 0.3, (30_000, 1))
    queries = centers[rng.integers(0, 200, 300)] + 0.5 * rng.normal(size=(300, 16))
    settings, report, _ = tune_scann(table.astype(np.float32), queries.astype(np.float32),
                                     k=10, target_recall=0.95, log=lambda *_: None)
    assert settings.num_leaves == int(np.sqrt(30_000))  # a tree, not brute force
    assert report["recall@10"] >= 0.95
    # Held-out queries: the tuned settings generalise.
    held_out = (centers[rng.integers(0, 200, 300)] + 0.5 * rng.normal(size=(300, 16)))
    searcher = build_searcher(table, 10, settings)
    recall = recall_against_exact(search(searcher, held_out, 10, settings),
                                  exact_top_k(held_out, table, 10))
    assert recall >= 0.9
