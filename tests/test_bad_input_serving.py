"""Bad requests to the real exported SavedModels fail in-graph with a message naming the input
(or, for finite extremes, are clamped as documented in `tfrec.serving.request_checks`), and
valid requests answer exactly as the models do offline."""
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from conftest import small_candidate_generator, three_taste_watches
from ranking_fixture import simulated_world
from tfrec.config import RankingConfig
from tfrec.features.dataset import padded_features
from tfrec.features.ranking_examples import CONTINUOUS_FEATURES, build_ranking_examples, \
    split_by_time
from tfrec.models.ranking_training import ranking_features, train_ranker
from tfrec.serving.candidate_exports import export_candidate_generation
from tfrec.serving.ranker_export import export_ranker
from tfrec.serving.retrieval import user_input_ranges

H = 5   # watch-history width of both models
K = 5
ROWS = 4  # requests of 4 rows
RETRIEVAL = ("retrieval_brute_force", "retrieval_scann")
USER = ("user_tower", *RETRIEVAL)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The real exports, reloaded; base requests; the models' own offline answers."""
    watches = three_taste_watches()
    _, ex, _, cg = small_candidate_generator(watches, H)
    features = padded_features(ex.validation, H, 64)
    base = str(tmp_path_factory.mktemp("saved_models"))
    paths = export_candidate_generation(cg, base, features, padded_features(ex.test, H, 64),
                                        {"run": "test"}, k=K,
                                        log=lambda *_: None)["paths"]

    events = simulated_world(n_users=60, pages_per_user=10)
    train, validation, test = split_by_time(build_ranking_examples(events, max_history=H))
    config = RankingConfig(features=("video_id", "watch_history", "language", "continuous"),
                           hidden_units=(8,), embedding_dim=4, max_history=H, epochs=1,
                           batch_size=512, selection_metric="weighted_logistic_loss")
    ranker, _ = train_ranker(train, validation, config, events.videos["video_id"],
                             log=lambda *_: None)
    ranked = ranking_features(test, list(ranker.scorer.input), H)
    paths["ranker"] = export_ranker(ranker, base, ranked, {"run": "test"}, log=lambda *_: None)

    import scann  # noqa: F401  (the ScaNN ops, for loading retrieval_scann)
    user = {n: features[n][:ROWS] for n in cg.user_tower.input}
    return {"loaded": {name: tf.saved_model.load(path) for name, path in paths.items()},
            "paths": paths, "cg": cg, "ranker": ranker,
            "request": {**{n: user for n in USER},
                        "ranker": {n: ranked[n][:ROWS] for n in ranker.scorer.input}},
            "max_age": user_input_ranges(cg.user_tower)["example_age"][1],
            "cdf": np.array(ranker.scorer.get_layer("cdf").boundaries)}


def serve(world, model, request, signature="serving_default"):
    fn = world["loaded"][model].signatures[signature]
    specs = fn.structured_input_signature[1]
    out = fn(**{n: tf.constant(v, specs[n].dtype) for n, v in request.items()})
    return {n: v.numpy() for n, v in out.items()}


def offline(world, model, request):
    """What the trained Keras model itself answers (retrieval: exact top-k, history excluded)."""
    if model == "ranker":
        return {n: v.numpy() for n, v in world["ranker"](request).items()}
    cg = world["cg"]
    if model == "user_tower":
        return {"user_vector": cg.user_tower.predict(request, verbose=0)}
    u = cg.query_vectors(request)
    ids, table = cg.candidate_table()
    scores = u @ table.T
    for r, history in enumerate(request["watch_history"]):
        scores[r, np.isin(ids, history)] = -np.inf
    order = np.argsort(-scores, axis=1, kind="stable")[:, :K]
    return {"video_ids": ids[order].astype(bytes), "scores": np.take_along_axis(scores, order, 1)}


def assert_same(got, expected, model):
    assert set(got) == set(expected)
    for name, value in expected.items():
        if value.dtype.kind in "SUO":
            # ScaNN is approximate: on this tiny corpus it finds the exact top-k's set.
            same = np.sort(got[name], 1) if model == "retrieval_scann" else got[name]
            np.testing.assert_array_equal(same, np.sort(value, 1) if model == "retrieval_scann"
                                          else value)
        else:
            np.testing.assert_allclose(got[name], value, rtol=1e-5, atol=1e-5)


# --- request edits: (world, request) -> new request -------------------------------------------
def setting(name, value, row=1):
    def edit(world, request):
        column = np.array(request[name], copy=True)
        column[row] = value(world) if callable(value) else value
        return {**request, name: column}
    return edit


def replacing(name, value):
    return lambda world, request: {**request, name: value(np.asarray(request[name]))}


def excluding(ids):
    return lambda world, request: {**request, "exclude_ids": np.asarray(ids, dtype=object)}


NO_EXCLUSIONS = excluding([[""]] * ROWS)
CONTINUOUS = CONTINUOUS_FEATURES.index  # row of a feature in the CDF boundaries


def below_training(feature):
    """A value well below the feature's smallest training value (float32 resolution)."""
    def value(world):
        b = world["cdf"][CONTINUOUS(feature), 0]
        return b - 1.0 - abs(b)
    return value


def above_training(feature):
    def value(world):
        b = world["cdf"][CONTINUOUS(feature), -1]
        return b + 1.0 + abs(b)
    return value


FINITE = "example_age must be finite (no NaN or inf), got 1 non-finite of 4 values"
CASES = [
    # (id, models, signature, edits, expected): expected is an error message (substring), or
    # edits giving the request whose answer must be the same, or "offline" (the model's own).
    *[(f"age_{v}_{m}", m, "serving_default", [setting("example_age", v)], FINITE)
      for v in (np.nan, np.inf, -np.inf) for m in USER],
    *[(f"age_-1e30_clamped_to_0_{m}", m, "serving_default", [setting("example_age", -1e30)],
       [setting("example_age", 0.0)]) for m in USER],
    *[(f"age_1e30_clamped_to_max_{m}", m, "serving_default", [setting("example_age", 1e30)],
       [setting("example_age", lambda w: w["max_age"])]) for m in USER],
    *[(f"history_1d_{m}", m, "serving_default", [replacing("watch_history", lambda x: x[0])],
       "watch_history must have rank 2 ([batch, n]), got rank 1") for m in USER],
    # Any width up to MAX_REQUEST_HISTORY: a narrower history is ""-padded for the tower.
    *[(f"history_narrower_is_padded_{m}", m, "serving_default",
       [replacing("watch_history", lambda x: x[:, :4])],
       [replacing("watch_history", lambda x: np.concatenate(
           [x[:, :4], np.full((len(x), 1), "", dtype=object)], axis=1))]) for m in USER],
    *[(f"history_too_long_{m}", m, "serving_default",
       [replacing("watch_history", lambda x: np.full((len(x), 1001), "v1", dtype=object))],
       "watch_history has 1001 ids, more than the 1000 a request may carry") for m in USER],
    *[(f"batch_mismatch_{m}", m, "serving_default", [replacing("example_age", lambda x: x[:3])],
       "example_age has batch size 3 but watch_history has 4") for m in USER],
    ("age_scalar", "user_tower", "serving_default", [replacing("example_age", lambda x: x[0])],
     "example_age must have rank 1 ([batch]), got rank 0"),
    *[(f"age_nan_{m}_exclude_watched", m, "exclude_watched",
       [NO_EXCLUSIONS, setting("example_age", np.nan)], FINITE) for m in RETRIEVAL],
    *[(f"exclude_ids_1d_{m}", m, "exclude_watched", [excluding(["v1", "v2"])],
       "exclude_ids must have rank 2 ([batch, n]), got rank 1") for m in RETRIEVAL],
    *[(f"exclude_ids_batch_{m}", m, "exclude_watched", [excluding([["v1"], ["v2"]])],
       "exclude_ids has batch size 2 but watch_history has 4") for m in RETRIEVAL],
    *[(f"history_1d_{m}_exclude_watched", m, "exclude_watched",
       [NO_EXCLUSIONS, replacing("watch_history", lambda x: x[0])],
       "watch_history must have rank 2 ([batch, n]), got rank 1") for m in RETRIEVAL],
    *[(f"valid_{m}", m, "serving_default", [], "offline") for m in USER],
    *[(f"valid_{m}_exclude_watched_nothing_extra", m, "exclude_watched", [NO_EXCLUSIONS],
       "offline") for m in RETRIEVAL],
    # The ranker.
    ("ranker_inf", "ranker", "serving_default", [setting("previous_impressions", np.inf)],
     "previous_impressions must be finite (no NaN or inf), got 1 non-finite of 4 values"),
    ("ranker_-inf", "ranker", "serving_default", [setting("video_age_seconds", -np.inf)],
     "video_age_seconds must be finite (no NaN or inf), got 1 non-finite of 4 values"),
    ("ranker_nan", "ranker", "serving_default", [setting("never_watched_topic", np.nan)],
     "never_watched_topic must be finite (no NaN or inf), got 1 non-finite of 4 values"),
    *[(f"ranker_{f}_-1e30_as_below_training", "ranker", "serving_default",
       [setting(f, -1e30)], [setting(f, below_training(f))])
      for f in CONTINUOUS_FEATURES],
    *[(f"ranker_{f}_1e30_as_above_training", "ranker", "serving_default",
       [setting(f, 1e30)], [setting(f, above_training(f))])
      for f in CONTINUOUS_FEATURES],
    ("ranker_indicator_1e30_clamped_to_1", "ranker", "serving_default",
     [setting("never_watched_channel", 1e30)], [setting("never_watched_channel", 1.0)]),
    ("ranker_indicator_-1e30_clamped_to_0", "ranker", "serving_default",
     [setting("never_watched_channel", -1e30)], [setting("never_watched_channel", 0.0)]),
    ("ranker_history_1d", "ranker", "serving_default",
     [replacing("watch_history", lambda x: x[0])],
     "watch_history must have rank 2 ([batch, 5]), got rank 1"),
    ("ranker_batch_mismatch", "ranker", "serving_default",
     [replacing("video_language", lambda x: x[:2])],
     "video_language has batch size 2 but video_id has 4"),
    ("ranker_valid", "ranker", "serving_default", [], "offline"),
]


@pytest.mark.parametrize("model,signature,edits,expected", [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_serving_checks_the_request(world, model, signature, edits, expected):
    request = world["request"][model]
    for edit in edits:
        request = edit(world, request)
    if isinstance(expected, str) and expected != "offline":
        with pytest.raises(tf.errors.InvalidArgumentError, match=re.escape(expected)):
            serve(world, model, request, signature)
        return
    got = serve(world, model, request, signature)
    for name, value in got.items():
        if value.dtype.kind == "f":
            assert np.isfinite(value).all(), (name, value)
    if expected == "offline":
        assert_same(got, offline(world, model, {n: request[n] for n in world["request"][model]}),
                    model)
    else:  # the same answer as the request with the value the extreme is clamped to
        reference = world["request"][model]
        for edit in expected:
            reference = edit(world, reference)
        assert_same(got, serve(world, model, reference, signature), model)


def test_saved_model_cli_run_reports_the_named_input(world):
    """saved_model_cli (a TF1 session, like TF Serving) reaches the same checks."""
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    run = subprocess.run([cli, "run", "--dir", world["paths"]["retrieval_brute_force"],
                          "--tag_set", "serve", "--signature_def", "serving_default",
                          "--input_exprs",
                          'watch_history=["v3","","","",""];age=["18"];example_age=[0.0]'],
                         capture_output=True, text=True, env={**os.environ,
                                                              "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert run.returncode != 0
    assert "watch_history must have rank 2 ([batch, n]), got rank 1" in run.stderr, \
        run.stderr[-3000:]


def test_signatures_accept_any_shape_and_manifests_keep_the_declared_ones(world):
    """Unknown-shape SignatureDefs let every request reach the checks; the manifest (what
    `tfrec recommend` and clients read) declares the real shapes: the ranker's history [batch,
    5], the retrieval servables' of any width (the tower reads the newest 5)."""
    import json
    for model, path in world["paths"].items():
        manifest = json.load(open(os.path.join(path, "manifest.json")))
        width = H if model == "ranker" else None
        assert manifest["inputs"]["watch_history"] == {"dtype": "string", "shape": [None, width]}
        if model != "ranker":
            assert (manifest["max_request_history"], manifest["tower_history"]) == (1000, H)
        for signature in world["loaded"][model].signatures.values():
            specs = signature.structured_input_signature[1]
            assert set(specs) >= set(manifest["inputs"])
            assert all(spec.shape.rank is None for spec in specs.values())


@pytest.mark.parametrize("model", USER)
def test_a_long_history_is_read_newest_first_and_excluded_whole(world, model):
    """The tower reads the newest 5 ids; every id of the request (here 5 + 25 more, i.e. every
    video of the corpus but a few) is excluded from the results, as evaluation excludes the
    whole earlier history."""
    request = world["request"][model]
    ids, _ = world["cg"].candidate_table()
    older = np.array([[v for v in ids if v not in row][:25] for row in request["watch_history"]],
                     dtype=object)
    long = {**request, "watch_history": np.concatenate([request["watch_history"], older], 1)}
    got, short = serve(world, model, long), serve(world, model, request)
    if model == "user_tower":
        np.testing.assert_allclose(got["user_vector"], short["user_vector"], rtol=1e-6)
        return
    for row, returned in enumerate(got["video_ids"].astype(str)):
        finite = np.isfinite(got["scores"][row])
        assert not set(returned[finite]) & set(long["watch_history"][row]), row
        assert finite.sum() == min(K, len(ids) - len(set(long["watch_history"][row]) - {""}))
