"""The watch-history encoders (tower.history_encoder): neither sees the label or what follows it,
the attention encoder ignores padding, serialises, trains in the real pipeline and exports."""
import json

import numpy as np
import pytest
import tensorflow as tf

import tfrec
from conftest import make_events, three_taste_watches
from tiny_pipeline import write_tiny_pipeline
from tfrec.config import ExampleConfig, SoftmaxConfig, UserTowerConfig, load_config
from tfrec.data.schema import write_events
from tfrec.features.dataset import padded_features
from tfrec.features.local_driver import build_candidate_examples
from tfrec.models.history_encoders import CausalSelfAttentionEncoder
from tfrec.models.training import build_model
from tfrec.pipeline import run_pipeline

H = 5


def _tower(encoder):
    return UserTowerConfig(features=("watch_history",), embedding_dim=8, hidden_units=(16, 8),
                           max_history=H, history_encoder=encoder, attention_blocks=2)


def _validation_vector(watches, model, user):
    """u [d] of `user`'s validation query (label: the second-to-last watch) built from
    `watches` by the example builder."""
    examples = build_candidate_examples(make_events(watches), ExampleConfig(max_history=H))
    features = padded_features(examples.validation, H, 64)
    row = int(np.flatnonzero(examples.validation["user_id"].astype(str) == user)[0])
    return model.query_vectors({k: v[row:row + 1] for k, v in features.items()})[0]


@pytest.mark.parametrize("encoder", ["mean", "attention"])
def test_encoder_sees_only_the_watches_before_the_label(encoder):
    watches = three_taste_watches()
    events = make_events(watches)
    examples = build_candidate_examples(events, ExampleConfig(max_history=H))
    model = build_model(examples, events.users, events.videos["video_id"].to_numpy(),
                        _tower(encoder), SoftmaxConfig(loss="full"))
    mine = [i for i, w in enumerate(watches) if w[0] == "u0"]  # in time order
    unwatched = sorted({w[1] for w in watches} - {watches[i][1] for i in mine})

    def changed(positions):
        out = list(watches)
        for n, i in enumerate(positions):
            out[i] = (watches[i][0], unwatched[n], watches[i][2])
        return out

    before = _validation_vector(watches, model, "u0")
    # The label (the second-to-last watch) and the test target after it: not in the features.
    np.testing.assert_array_equal(_validation_vector(changed(mine[-2:]), model, "u0"), before)
    # The newest watch of the history, and one of its oldest (the attention encoder's newest
    # position attends to it): each changes u.
    for inside in (mine[-3], mine[-2 - H]):
        assert np.abs(_validation_vector(changed([inside]), model, "u0") - before).max() > 1e-6


def test_attention_ignores_padding_and_empty_histories_give_zeros():
    layer = CausalSelfAttentionEncoder(H, blocks=2, heads=2)
    rng = np.random.default_rng(0)
    embeddings = rng.normal(size=(3, H, 8)).astype(np.float32)
    mask = np.arange(H)[None, :] < np.array([[2], [H], [0]])  # lengths 2, 5, 0
    out = layer(embeddings, mask).numpy()
    noisy = np.where(mask[..., None], embeddings, rng.normal(size=embeddings.shape) * 10)
    np.testing.assert_allclose(layer(noisy.astype(np.float32), mask).numpy(), out, atol=1e-6)
    np.testing.assert_array_equal(out[2], 0.0)
    # The oldest real watch reaches the output through the newest position.
    older = embeddings.copy()
    older[1, H - 1] = rng.normal(size=8)
    assert np.abs(layer(older, mask).numpy()[1] - out[1]).max() > 1e-4
    clone = CausalSelfAttentionEncoder.from_config(layer.get_config())
    clone(embeddings, mask)
    clone.set_weights(layer.get_weights())
    np.testing.assert_allclose(clone(embeddings, mask).numpy(), out, atol=1e-6)


def test_attention_heads_must_divide_the_embedding_width():
    with pytest.raises(ValueError, match="attention_heads"):
        UserTowerConfig(embedding_dim=10, history_encoder="attention", attention_heads=3)
    UserTowerConfig(embedding_dim=10, attention_heads=3)  # the mean encoder has no heads


def test_attention_tower_trains_in_the_pipeline_and_exports(tmp_path):
    write_events(make_events(three_taste_watches()), str(tmp_path / "events"))
    write_tiny_pipeline(tmp_path / "tiny.yaml", tmp_path / "events", tmp_path / "saved_models",
                        {"candidate_generation": {
                            "tower": {"history_encoder": "attention", "attention_dropout": 0.1},
                            "training": {"epochs": 4, "patience": 4}}})
    metrics = run_pipeline(load_config(str(tmp_path / "tiny.yaml")),
                           runs_dir=str(tmp_path / "runs"), log=lambda *_: None, report=False)
    losses = [h["loss"] for h in metrics["retrieval"]["history"]]
    assert len(losses) == 4 and losses[-1] < losses[0]
    run = tfrec.load_run(str(tmp_path / "runs" / "tiny"))
    assert run.user_tower.get_layer("watch_history_attention") is not None
    ids = run.candidate_generator.video_ids
    request = {"watch_history": np.array([list(ids[:H]), list(ids[3:5]) + [""] * 3],
                                         dtype=object),
               "example_age": np.zeros(2, np.float32)}
    served = tf.saved_model.load(str(tmp_path / "runs" / "tiny" / "export" / "servables" /
                                     "user_tower")).signatures["serving_default"]
    got = served(**{k: tf.constant(v) for k, v in request.items()})["user_vector"].numpy()
    np.testing.assert_allclose(got, run.user_tower(request, training=False).numpy(),
                               rtol=1e-5, atol=1e-5)
    manifest = json.loads((tmp_path / "runs" / "tiny" / "export" / "servables" / "user_tower" /
                           "manifest.json").read_text())
    assert set(manifest["inputs"]) == {"watch_history", "example_age"}
