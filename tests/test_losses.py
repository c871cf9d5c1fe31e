"""The softmax losses against TensorFlow's and TFRS' own, the corrections, the sampler, and the
streaming label-frequency estimate. NumPy references of every loss: test_loss_reference.py."""
import numpy as np
import pytest
import tensorflow as tf

from tfrec.losses.corrections import LogQCorrection, RemoveAccidentalHits
from tfrec.losses.label_probability.counts import LabelCounts
from tfrec.losses.label_probability.streaming import StreamingFrequencyEstimator
from tfrec.losses.samplers import CandidateSampler, uniform_probabilities, unigram_probabilities
from tfrec.losses.softmax import SamplingPieces, softmax_cross_entropy
from tfrec.losses.softmax.full import FullSoftmax
from tfrec.losses.softmax.in_batch import InBatchSoftmax
from tfrec.losses.softmax.sampled import SampledSoftmax

RNG = np.random.default_rng(0)


def _problem(batch=8, vocab=50, dim=6):
    q = tf.constant(RNG.normal(size=(batch, dim)), tf.float32)
    table = tf.constant(RNG.normal(size=(vocab, dim)), tf.float32)
    bias = tf.constant(RNG.normal(size=vocab), tf.float32)
    labels = tf.constant(RNG.integers(0, vocab, batch), tf.int64)
    return q, table, bias, labels


def _pieces(proposal, label_p=None, num=0, seed=0, logq=True):
    label_p = np.full(len(proposal), 1 / len(proposal)) if label_p is None else label_p
    return SamplingPieces(CandidateSampler(proposal, seed=seed), LabelCounts(label_p), num, logq)


def test_sampled_softmax_equals_tf_nn_sampled_softmax_loss_on_the_same_candidates():
    q, table, bias, labels = _problem()
    proposal = unigram_probabilities(RNG.integers(1, 100, 50), 0.75)
    num = 20
    # A twin of the loss's sampler (same seed) shows which negatives the loss draws. Seed 0
    # draws two labels once each: accidental hits, but none twice (tf.nn.compute_accidental_hits
    # flags only one of two equal negatives; ours removes both, see test_loss_reference.py).
    neg = CandidateSampler(proposal, seed=0).sample(num)
    hits = [int(np.sum(neg.numpy() == label)) for label in labels.numpy()]
    assert max(hits) == 1 and sum(hits) == 2
    qp = tf.constant(proposal, tf.float32)
    ours = SampledSoftmax(_pieces(proposal, num=num, seed=0)).per_example_loss(
        q, labels, table, bias)
    reference = tf.nn.sampled_softmax_loss(
        table, bias, labels[:, None], q, num_sampled=num, num_classes=50,
        sampled_values=(neg, num * tf.gather(qp, labels)[:, None], num * tf.gather(qp, neg)),
        remove_accidental_hits=True)
    np.testing.assert_allclose(ours.numpy(), reference.numpy(), rtol=1e-5, atol=1e-5)


def test_in_batch_loss_equals_tfrs_retrieval_task_with_logq_and_hit_removal():
    import tensorflow_recommenders as tfrs
    q, table, _, _ = _problem()
    labels = tf.constant([1, 2, 3, 1, 4, 5, 6, 7], tf.int64)  # rows 0 and 3 share a label
    p = RNG.uniform(0.01, 0.2, 50)
    ours = InBatchSoftmax(_pieces(np.full(50, 0.02), label_p=p)).per_example_loss(
        q, labels, table)
    task = tfrs.tasks.Retrieval(
        loss=tf.keras.losses.CategoricalCrossentropy(
            from_logits=True, reduction=tf.keras.losses.Reduction.NONE),
        remove_accidental_hits=True)
    # TFRS subtracts log P(j), ours log(B P(j)): the same softmax (a shift of every logit).
    theirs = task(q, tf.gather(table, labels),
                  candidate_sampling_probability=tf.gather(tf.constant(p, tf.float32), labels),
                  candidate_ids=labels, compute_metrics=False, compute_batch_metrics=False)
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-5, atol=1e-5)


def test_logq_lowers_the_popular_candidates_logit():
    logits = tf.zeros([1, 2])
    corrected = LogQCorrection()(logits, tf.constant([0.9, 0.001]))
    assert corrected[0, 0] < corrected[0, 1]
    np.testing.assert_allclose(corrected.numpy(), [[-np.log(0.9), -np.log(0.001)]], rtol=1e-6)
    assert np.isfinite(LogQCorrection()(logits, tf.constant([1e-30, 1.0])).numpy()).all()


def test_accidental_hit_removal_equals_dropping_that_negative():
    logits = tf.constant([[2.0, 0.5, -1.0, 3.0]])  # column 0 the positive (row 5), 3 a hit
    pool = tf.constant([5, 7, 9, 5], tf.int64)
    masked = RemoveAccidentalHits()(logits[:, 1:], tf.constant([5], tf.int64), pool[1:])
    with_hit = softmax_cross_entropy(tf.concat([logits[:, :1], masked], 1), tf.constant([0]))
    dropped = softmax_cross_entropy(logits[:, :3], tf.constant([0]))
    np.testing.assert_allclose(with_hit.numpy(), dropped.numpy(), rtol=1e-6)
    kept = RemoveAccidentalHits()(tf.zeros([2, 2]), tf.constant([5, 6]), tf.constant([5, 7]),
                                  positive_column=tf.constant([0, 1]))
    assert kept.numpy()[0, 0] == 0 and kept.numpy()[1, 0] == 0


def test_sampled_gradient_approaches_full_softmax_gradient_as_negatives_grow():
    q, table, _, labels = _problem(batch=16, vocab=400, dim=8)
    table = tf.Variable(table)
    proposal = uniform_probabilities(400)
    with tf.GradientTape() as tape:
        full = tf.reduce_mean(FullSoftmax(_pieces(proposal)).per_example_loss(q, labels, table))
    g_full = tf.convert_to_tensor(tape.gradient(full, table))
    errors = []
    for num in (16, 256, 4096):
        loss = SampledSoftmax(_pieces(proposal, num=num, seed=1))
        grads = []
        for _ in range(8):
            with tf.GradientTape() as tape:
                mean = tf.reduce_mean(loss.per_example_loss(q, labels, table))
            grads.append(tf.convert_to_tensor(tape.gradient(mean, table)))
        g = tf.reduce_mean(tf.stack(grads), 0)
        errors.append(float(tf.norm(g - g_full) / tf.norm(g_full)))
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 0.1 < errors[0]


def test_sampler_draws_from_its_proposal_and_never_from_zero_rows():
    q = np.array([0.0, 0.0, 0.5, 0.3, 0.2])
    draws = CandidateSampler(q, seed=3).sample(20000).numpy()
    freq = np.bincount(draws, minlength=5) / len(draws)
    assert freq[0] == freq[1] == 0
    np.testing.assert_allclose(freq, q, atol=0.015)


def _train_in_batch(correct, seed=0, users=300, items=120, steps=1500, batch=128):
    """Users x items softmax with Zipf-popular items; returns model and true P(item | user)."""
    rng = np.random.default_rng(seed)
    popularity = 1.0 / np.arange(1, items + 1) ** 1.2
    clusters_u, clusters_i = rng.integers(0, 6, users), rng.integers(0, 6, items)
    truth = popularity[None, :] * np.exp(2.0 * (clusters_u[:, None] == clusters_i[None, :]))
    truth /= truth.sum(1, keepdims=True)
    user_seq = rng.integers(0, users, steps * batch)
    item_seq = np.array([rng.choice(items, p=truth[u]) for u in user_seq[:20000]])
    item_seq = np.resize(item_seq, len(user_seq))
    user_seq = np.resize(user_seq[:20000], len(user_seq))
    p_label = np.bincount(item_seq, minlength=items) / len(item_seq)
    tf.keras.utils.set_random_seed(seed)
    ue = tf.Variable(tf.random.normal([users, 16], stddev=0.1))
    ie = tf.Variable(tf.random.normal([items, 16], stddev=0.1))
    opt = tf.keras.optimizers.Adam(0.02)
    loss = InBatchSoftmax(_pieces(np.full(items, 1 / items), label_p=p_label, logq=correct))

    @tf.function
    def step(u, i):
        with tf.GradientTape() as tape:
            mean = tf.reduce_mean(loss.per_example_loss(tf.gather(ue, u), i, ie))
        opt.apply_gradients(zip(tape.gradient(mean, [ue, ie]), [ue, ie]))

    for s in range(steps):
        sl = slice(s * batch, (s + 1) * batch)
        step(tf.constant(user_seq[sl]), tf.constant(item_seq[sl], tf.int64))
    return (ue.numpy() @ ie.numpy().T), truth, popularity


@pytest.mark.parametrize("seed", [0])
def test_logq_correction_undoes_the_popularity_bias_of_in_batch_negatives(seed):
    """In-batch negatives are drawn by popularity, so without logQ the model learns
    log p(j|u) - log P(j): popular videos are pushed down. With logQ it learns log p(j|u)."""
    top = lambda scores: np.argsort(-scores, axis=1)[:, :10]  # noqa: E731
    results = {}
    for correct in (False, True):
        scores, truth, popularity = _train_in_batch(correct, seed)
        rec = top(scores)
        true_top = top(truth)
        overlap = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(rec, true_top)])
        share_popular = np.mean(rec < 12)  # the 10% most popular items
        results[correct] = (overlap, share_popular)
    true_share = np.mean(top(truth) < 12)
    # Uncorrected: popular items are under-recommended; corrected: close to the truth.
    assert results[False][1] < 0.5 * true_share
    assert abs(results[True][1] - true_share) < 0.15
    assert results[True][0] > results[False][0] + 0.2


def test_streaming_frequency_estimate_follows_how_often_rows_appear():
    est = StreamingFrequencyEstimator(5, alpha=0.05)
    for step in range(1, 401):
        rows = [0, 0, 0] + ([1] if step % 4 == 0 else []) + ([2] if step % 10 == 0 else [])
        est.update(tf.constant(rows, tf.int64))
        if step == 40:  # no start-up bias: right after a few sightings
            np.testing.assert_allclose(
                est.expected_count_in_batch(tf.constant([0, 1, 2])).numpy(), [3.0, 0.25, 0.1],
                rtol=0.05)
    p = est.expected_count_in_batch(tf.constant([0, 1, 2, 3], tf.int64)).numpy()
    np.testing.assert_allclose(p[:3], [3.0, 0.25, 0.1], rtol=0.05)  # 3 per batch, 1/4, 1/10
    assert p[3] < 0.01  # never seen: rarer than anything observed
