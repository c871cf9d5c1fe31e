"""The sampling pieces as Keras layers: each one's from_config(get_config()) gives the same
outputs, and the stateful ones' state is in checkpoints."""
import json

import numpy as np
import pytest
import tensorflow as tf

from tfrec.losses.corrections import MIN_LOGIT, LogQCorrection, RemoveAccidentalHits
from tfrec.losses.label_probability.counts import LabelCounts
from tfrec.losses.label_probability.streaming import StreamingFrequencyEstimator
from tfrec.losses.samplers import CandidateSampler
from tfrec.losses.softmax.mixed import MixedPool
from tfrec.models.candidate_generation import CandidateSoftmaxTask
from tfrec.config import SoftmaxConfig

P = np.array([0.1, 0.3, 0.05, 0.15, 0.2, 0.2])
Q = np.array([0.0, 0.3, 0.1, 0.2, 0.25, 0.15])
LABELS = tf.constant([1, 4, 1], tf.int64)


def _clone(layer):
    """from_config(get_config()), through JSON as a saved config would go."""
    return type(layer).from_config(json.loads(json.dumps(layer.get_config())))


def test_logq_correction_round_trips():
    layer = LogQCorrection(name="logq")
    logits, counts = tf.constant([[1.0, 2.0, 3.0]]), tf.constant([0.5, 1.0, 4.0])
    np.testing.assert_allclose(layer(logits, counts).numpy(), [[1 + np.log(2), 2, 3 - np.log(4)]],
                               rtol=1e-6)
    assert _clone(layer).name == "logq"
    np.testing.assert_array_equal(_clone(layer)(logits, counts), layer(logits, counts))


def test_remove_accidental_hits_round_trips():
    layer = RemoveAccidentalHits()
    logits = tf.constant([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    args = (logits, tf.constant([7, 8], tf.int64), tf.constant([7, 8, 7], tf.int64))
    out = layer(*args, positive_column=tf.constant([0, 1])).numpy()
    np.testing.assert_array_equal(out, [[1, 2, MIN_LOGIT], [4, 5, 6]])
    np.testing.assert_array_equal(_clone(layer)(*args, positive_column=tf.constant([0, 1])), out)
    np.testing.assert_array_equal(_clone(layer)(*args), layer(*args))


def test_sampler_round_trips_to_the_same_draws_and_proposal():
    sampler = CandidateSampler(Q, seed=3)
    clone = _clone(sampler)
    rows = tf.constant([0, 1, 5], tf.int64)
    np.testing.assert_array_equal(clone.sample(50), sampler.sample(50))
    np.testing.assert_allclose(sampler.expected_count_in_sample(rows, 4).numpy(),
                               4 * Q[[0, 1, 5]], rtol=1e-6)
    np.testing.assert_array_equal(clone.expected_count_in_sample(rows, 4),
                                  sampler.expected_count_in_sample(rows, 4))


def test_label_counts_round_trip():
    counts = LabelCounts(P)
    np.testing.assert_allclose(counts.expected_count_in_batch(LABELS, 3).numpy(),
                               3 * P[[1, 4, 1]], rtol=1e-6)
    np.testing.assert_array_equal(_clone(counts).expected_count_in_batch(LABELS, 3),
                                  counts.expected_count_in_batch(LABELS, 3))


def _observed_estimator():
    est = StreamingFrequencyEstimator(6, alpha=0.1)
    for rows in ([1, 1, 4], [2, 4], [1, 5, 5]):
        est.update(tf.constant(rows, tf.int64))
    return est


def test_streaming_estimator_round_trips_with_its_weights():
    est = _observed_estimator()
    rows = tf.constant([0, 1, 2, 4, 5], tf.int64)
    clone = _clone(est)
    assert (clone.num_rows, clone.alpha) == (6, 0.1)
    assert sorted(w.name for w in est.weights) == ["count:0", "gap:0", "last_seen:0",
                                                   "sightings:0", "step:0"]
    clone.set_weights(est.get_weights())
    np.testing.assert_array_equal(clone.expected_count_in_batch(rows),
                                  est.expected_count_in_batch(rows))
    # Row 1: twice at step 1, once at step 3: mean count (2 + 1) / 2 per sighting, mean gap
    # (1 + 2) / 2 steps, so 1 per batch; row 0, never seen: 1 / (3 steps + 1).
    np.testing.assert_allclose(est.expected_count_in_batch(tf.constant([1, 0])).numpy(),
                               [1.0, 0.25], rtol=1e-6)


def test_streaming_estimator_state_restores_from_a_checkpoint(tmp_path):
    est = _observed_estimator()
    path = tf.train.Checkpoint(frequency=est).write(str(tmp_path / "ckpt"))
    fresh = StreamingFrequencyEstimator(6, alpha=0.1)
    tf.train.Checkpoint(frequency=fresh).read(path).assert_consumed()
    for layer in (est, fresh):
        layer.update(tf.constant([3, 4], tf.int64))
    rows = tf.range(6, dtype=tf.int64)
    np.testing.assert_array_equal(fresh.expected_count_in_batch(rows),
                                  est.expected_count_in_batch(rows))


@pytest.mark.parametrize("source", [lambda: LabelCounts(P), _observed_estimator])
def test_mixed_pool_round_trips(source):
    pool = MixedPool(CandidateSampler(Q, seed=7), source(), num_negatives=4)
    config = json.loads(json.dumps(tf.keras.layers.serialize(pool)))
    clone = tf.keras.layers.deserialize(config)
    if isinstance(pool.label_probability, StreamingFrequencyEstimator):
        clone.label_probability.set_weights(pool.label_probability.get_weights())
    rows, expected = pool(LABELS)
    clone_rows, clone_expected = clone(LABELS)
    np.testing.assert_array_equal(clone_rows, rows)
    np.testing.assert_array_equal(clone_expected, expected)
    assert rows.shape == (7,) and np.array_equal(rows[:3], LABELS)
    negatives = CandidateSampler(Q, seed=7).sample(4).numpy()
    np.testing.assert_array_equal(rows[3:], negatives)
    np.testing.assert_allclose(expected.numpy(), pool.label_probability.expected_count_in_batch(
        rows, 3).numpy() + 4 * Q[rows.numpy()], rtol=1e-6)


def _task_inputs():
    rng = np.random.default_rng(0)
    return (tf.constant(rng.normal(size=(3, 2)), tf.float32), LABELS,
            tf.constant(rng.normal(size=(6, 2)), tf.float32),
            tf.constant(rng.normal(size=6), tf.float32))


@pytest.mark.parametrize("loss", ["full", "sampled", "in_batch", "mixed"])
def test_the_task_round_trips(loss):
    task = CandidateSoftmaxTask(SoftmaxConfig(loss=loss, num_negatives=4, logq_correction=False,
                                              label_probability="streaming"), P, Q, seed=5)
    clone = _clone(task)
    assert clone.config == task.config and clone.seed == 5
    for _ in range(2):  # a training call updates the estimator in both the same way
        assert float(clone(*_task_inputs(), training=True)) == \
            float(task(*_task_inputs(), training=True))


def test_the_task_resumes_its_sampler_and_estimator_from_a_checkpoint(tmp_path):
    config = SoftmaxConfig(loss="mixed", num_negatives=4, label_probability="streaming")
    task = CandidateSoftmaxTask(config, P, Q, seed=5)
    task(*_task_inputs(), training=True)
    path = tf.train.Checkpoint(task=task).write(str(tmp_path / "ckpt"))
    expected = [float(task(*_task_inputs(), training=True)) for _ in range(2)]
    resumed = CandidateSoftmaxTask(config, P, Q, seed=5)
    tf.train.Checkpoint(task=resumed).read(path).assert_consumed()
    assert [float(resumed(*_task_inputs(), training=True)) for _ in range(2)] == expected
    fresh = CandidateSoftmaxTask(config, P, Q, seed=5)
    assert float(fresh(*_task_inputs(), training=True)) != expected[0]
