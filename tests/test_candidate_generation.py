
import numpy as np
import pytest
import tensorflow as tf

from conftest import make_events, three_taste_watches
from tfrec.config import ExampleConfig, SoftmaxConfig, TrainingConfig, UserTowerConfig
from tfrec.data.movielens import read_recbole
from tfrec.features.dataset import candidate_dataset
from tfrec.features.local_driver import build_candidate_examples
from tfrec.models.layers import ExampleAgeFeatures, MaskedMean
from tfrec.models.popularity import Popularity
from tfrec.models.training import build_model, evaluate_model, train_candidate_generation
from tfrec.evaluation.next_watch import evaluate_next_watch

TINY_TOWER = UserTowerConfig(embedding_dim=8, hidden_units=(16, 8), max_history=5,
                             features=("watch_history", "search_tokens", "demographics",
                                       "example_age"), demographic_columns=("age",))


@pytest.fixture(scope="module")
def tiny():
    watches = three_taste_watches()
    events = make_events(watches, searches=[("u1", 3, "cats and dogs")])
    events.users["age"] = [str(18 + i % 3) for i in range(len(events.users))]
    return events, build_candidate_examples(events, ExampleConfig(max_history=5))


@pytest.mark.parametrize("loss,label_probability", [
    ("full", "counts"), ("sampled", "counts"), ("in_batch", "counts"), ("mixed", "counts"),
    ("in_batch", "streaming"), ("mixed", "streaming")])
def test_every_loss_trains_with_finite_falling_loss(tiny, loss, label_probability):
    events, ex = tiny
    softmax = SoftmaxConfig(loss=loss, num_negatives=7, use_bias=True,
                            label_probability=label_probability)
    model = build_model(ex, events.users, events.videos["video_id"].to_numpy(), TINY_TOWER,
                        softmax)
    model.compile(optimizer=tf.keras.optimizers.Adam(0.01))
    ds = candidate_dataset(ex.train, 16, max_history=5, drop_remainder=True)
    history = model.fit(ds, epochs=6, verbose=0).history["loss"]
    assert np.isfinite(history).all() and history[-1] < history[0]


def test_unseen_ids_empty_history_and_padding_give_finite_vectors(tiny):
    events, ex = tiny
    model = build_model(ex, events.users, events.videos["video_id"].to_numpy(), TINY_TOWER,
                        SoftmaxConfig(loss="full"))
    features = {
        "watch_history": np.array([["never-seen", "", "", "", ""], [""] * 5], dtype=object),
        "search_tokens": np.array([[""] * 64, ["zzz"] + [""] * 63], dtype=object),
        "age": np.array(["999", ""], dtype=object),
        "example_age": np.zeros(2, np.float32),
    }
    u = model.query_vectors(features)
    assert u.shape == (2, 8) and np.isfinite(u).all()


def test_tower_has_named_inputs_and_layers_serialise():
    from tfrec.models.candidate_generation import CandidateGenerationModel
    model = CandidateGenerationModel(["a", "b", "c"], [3, 2, 1], {"age": ["1", "2"]}, 100.0,
                                     TINY_TOWER, SoftmaxConfig(loss="full"))
    assert sorted(model.user_tower.input) == ["age", "example_age", "search_tokens",
                                              "watch_history"]
    assert model.user_tower.output_shape == (None, 8)
    layer = ExampleAgeFeatures.from_config(ExampleAgeFeatures(86400.0, 0.05).get_config())
    assert (layer.scale_seconds, layer.output_scale) == (86400.0, 0.05)
    out = ExampleAgeFeatures(10.0)(tf.constant([0.0, 5.0, 10.0])).numpy()
    np.testing.assert_allclose(out, [[0, 0], [0.5, 0.25], [1, 1]])
    scaled = ExampleAgeFeatures(10.0, 0.05)(tf.constant([0.0, 5.0, 10.0])).numpy()
    np.testing.assert_allclose(scaled, [[0, 0], [0.025, 0.0125], [0.05, 0.05]], rtol=1e-6)
    mean = MaskedMean()(tf.ones([2, 3, 4]), tf.constant([[True, False, False], [False] * 3]))
    np.testing.assert_allclose(mean.numpy(), [[1] * 4, [0] * 4])
    with pytest.raises(ValueError, match="unknown user features"):
        CandidateGenerationModel(["a"], [1], {}, 1.0,
                                 TINY_TOWER.model_copy(update={"features": ("colour",)}))
    with pytest.raises(ValueError, match="unique"):
        CandidateGenerationModel(["a", "a"], [1, 1], {}, 1.0, TINY_TOWER)


def test_example_age_as_an_output_shift_vanishes_at_serving_age_and_trains(tiny):
    """output_shift: u = tower(other features) + W [x, x^2]; at age 0 u is the taste part alone,
    older ages move u along learned directions, and the tower trains with a falling loss."""
    events, ex = tiny
    tower = TINY_TOWER.model_copy(update={"example_age_path": "output_shift"})
    model = build_model(ex, events.users, events.videos["video_id"].to_numpy(), tower,
                        SoftmaxConfig(loss="full"))
    assert "example_age_shift" in [layer.name for layer in model.user_tower.layers]
    assert model.user_tower.get_layer("relu_0").input_shape[-1] == 8 + 32 + 8  # no age input
    features = {"watch_history": np.array([["v1", "v2", "", "", ""]] * 3, dtype=object),
                "search_tokens": np.array([[""] * 64] * 3, dtype=object),
                "age": np.array(["18"] * 3, dtype=object),
                "example_age": np.array([0.0, 0.0, 1e6], np.float32)}
    u = model.query_vectors(features)
    taste = model.user_tower.get_layer("user_vector").input[0]
    taste_part = tf.keras.Model(model.user_tower.input, taste)(
        {k: tf.constant(v) for k, v in features.items()}).numpy()
    np.testing.assert_allclose(u[:2], taste_part[:2], rtol=1e-6)
    assert not np.allclose(u[2], u[0])
    model.compile(optimizer=tf.keras.optimizers.Adam(0.01))
    ds = candidate_dataset(ex.train, 16, max_history=5, drop_remainder=True)
    history = model.fit(ds, epochs=6, verbose=0).history["loss"]
    assert np.isfinite(history).all() and history[-1] < history[0]


def test_model_learns_movielens_and_beats_popularity(ml100k_dir):
    events = read_recbole(ml100k_dir)
    ex = build_candidate_examples(events, ExampleConfig(max_examples_per_user=40))
    corpus = events.videos["video_id"].to_numpy()
    tower = UserTowerConfig(embedding_dim=32, hidden_units=(64, 32))
    model, result = train_candidate_generation(
        ex, events.users, corpus, tower, SoftmaxConfig(loss="sampled", num_negatives=256),
        TrainingConfig(epochs=4, patience=4, learning_rate=0.003), log=lambda *_: None)
    losses = [h["loss"] for h in result["history"]]
    assert losses[-1] < losses[0]
    pop = Popularity(corpus, ex.train_watches["video_id"])
    pop_test = evaluate_next_watch(lambda s, e: pop.scores(e - s), ex.test, corpus)
    assert result["test"]["recall@100"] > pop_test["recall@100"] + 0.05
    assert result["test"]["recall@50"] > pop_test["recall@50"]
    assert result["test"] == evaluate_model(model, ex.test, tower)  # best weights kept


def test_resumable_dropout_masks_follow_seed_and_step():
    from tfrec.models.layers import ResumableDropout
    x = tf.ones([64, 32])
    layer = ResumableDropout(0.5, seed=3)
    first, second = layer(x, training=True).numpy(), layer(x, training=True).numpy()
    assert int(layer.step.numpy()) == 2 and not np.array_equal(first, second)
    assert set(np.unique(first)) == {0.0, 2.0} and 0.4 < (first == 0).mean() < 0.6
    np.testing.assert_array_equal(layer(x, training=False).numpy(), x.numpy())
    # A copy restored to step 0 (as from a checkpoint) draws the same masks again.
    again = ResumableDropout.from_config(layer.get_config())
    again.build(x.shape)
    np.testing.assert_array_equal(again(x, training=True).numpy(), first)
