"""Every registered loss against a NumPy computation by hand, on a tiny corpus.

V = 6 rows, B = 3 examples, d = 2, N = 4 negatives. The negatives are the ones the loss's sampler
draws: a twin sampler with the same seed shows them before the loss runs. Per example the
reference takes the pool of candidates the loss's docstring names, subtracts log(expected count)
from each logit (logQ), drops the accidental hits (entries equal to the label other than the
positive) and returns logsumexp(pool) - positive logit.
"""
import numpy as np
import pytest
import tensorflow as tf

from tfrec.losses.label_probability.counts import LabelCounts
from tfrec.losses.registry import LOSSES
from tfrec.losses.samplers import CandidateSampler
from tfrec.losses.softmax import SamplingPieces
from tfrec.models.candidate_generation import CandidateSoftmaxTask
from tfrec.config import SoftmaxConfig

V, B, D, N, SEED = 6, 3, 2, 4, 11
RNG = np.random.default_rng(4)
# Float32 values, so the reference (float64) and TensorFlow (float32) start from the same numbers.
QUERIES = RNG.normal(size=(B, D)).astype(np.float32)
TABLE = RNG.normal(size=(V, D)).astype(np.float32)
BIAS = RNG.normal(size=V).astype(np.float32)
LABELS = np.array([1, 4, 1])  # examples 0 and 2 share a label: an in-batch accidental hit
P = np.array([0.1, 0.3, 0.05, 0.15, 0.2, 0.2])  # label distribution (P(1) != P(4))
Q = np.array([0.05, 0.3, 0.1, 0.2, 0.25, 0.1])  # negative proposal
NEGATIVES = CandidateSampler(Q, seed=SEED).sample(N).numpy()


def test_the_fixed_negatives_hold_an_accidental_hit():
    assert set(NEGATIVES) & set(LABELS), NEGATIVES


def _logsumexp(x):
    return x.max() + np.log(np.exp(x - x.max()).sum())


def _example_loss(i, pool, expected, positive, logq, bias):
    """Loss of example i over pool rows `pool` with expected counts `expected` [len(pool)] and
    the positive at column `positive`."""
    pool = np.asarray(pool)
    logits = TABLE[pool].astype(np.float64) @ QUERIES[i].astype(np.float64)
    if bias:
        logits += BIAS[pool]
    if logq and expected is not None:
        logits -= np.log(expected)
    keep = pool != LABELS[i]
    keep[positive] = True
    return _logsumexp(logits[keep]) - logits[positive]


def reference_loss(name, logq=True, bias=True):
    """[B] per-example loss of loss `name`, by hand."""
    out = []
    for i in range(B):
        if name == "full":  # every row once, no correction
            pool, expected, positive = np.arange(V), None, LABELS[i]
        elif name == "sampled":  # [positive, N negatives], counts N Q(j)
            pool = np.concatenate([[LABELS[i]], NEGATIVES])
            expected, positive = N * Q[pool], 0
        elif name == "in_batch":  # the B labels, counts B P(j)
            pool, positive = LABELS, i
            expected = B * P[pool]
        elif name == "mixed":  # the B labels + N negatives, counts B P(j) + N Q(j)
            pool, positive = np.concatenate([LABELS, NEGATIVES]), i
            expected = B * P[pool] + N * Q[pool]
        out.append(_example_loss(i, pool, expected, positive, logq, bias))
    return np.array(out)


def _tf_inputs():
    return (tf.constant(QUERIES), tf.constant(LABELS, tf.int64), tf.constant(TABLE),
            tf.constant(BIAS))


def _loss(name, logq=True):
    """A fresh loss `name` (its sampler at the seed, so it draws NEGATIVES first)."""
    return LOSSES.get(name)(SamplingPieces(CandidateSampler(Q, seed=SEED), LabelCounts(P), N,
                                           logq))


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("logq", [True, False])
@pytest.mark.parametrize("name", ["full", "sampled", "in_batch", "mixed"])
def test_each_loss_equals_its_numpy_reference(name, logq, bias):
    queries, labels, table, b = _tf_inputs()
    got = _loss(name, logq).per_example_loss(queries, labels, table, b if bias else None)
    np.testing.assert_allclose(got.numpy(), reference_loss(name, logq, bias), rtol=0, atol=1e-6)


def test_every_registered_loss_has_a_reference_here():
    assert set(LOSSES.names()) == {"full", "sampled", "in_batch", "mixed"}


@pytest.mark.parametrize("name", ["full", "sampled", "in_batch", "mixed"])
def test_the_task_is_the_mean_of_the_reference(name):
    task = CandidateSoftmaxTask(SoftmaxConfig(loss=name, num_negatives=N), P, Q, seed=SEED)
    got = float(task(*_tf_inputs()))
    assert got == pytest.approx(reference_loss(name).mean(), abs=1e-6)
    weights = tf.constant([1.0, 0.0, 3.0])
    task = CandidateSoftmaxTask(SoftmaxConfig(loss=name, num_negatives=N), P, Q, seed=SEED)
    weighted = float(task(*_tf_inputs(), sample_weight=weights))
    assert weighted == pytest.approx(np.average(reference_loss(name), weights=weights), abs=1e-6)
