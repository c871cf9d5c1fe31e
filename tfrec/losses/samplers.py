"""Negative proposals Q over the video rows, and the label distribution P of the training data."""
import numpy as np
import tensorflow as tf


def unigram_probabilities(counts, alpha=1.0):
    """Q(j) proportional to counts[j] ** alpha over rows with counts > 0 (alpha=0: uniform).

    Args:
      counts: [V] non-negative counts per embedding row (0 for padding/OOV rows, which are then
        never sampled).
    Returns:
      [V] float64 probabilities summing to 1.
    """
    counts = np.asarray(counts, dtype=np.float64)
    weights = np.where(counts > 0, counts ** alpha, 0.0)
    if weights.sum() <= 0:
        raise ValueError("no row has a positive count: cannot build a proposal")
    return weights / weights.sum()


def uniform_probabilities(num_rows, first_row=0):
    """Q uniform over rows [first_row, num_rows) (rows before are padding / OOV)."""
    q = np.zeros(num_rows)
    q[first_row:] = 1.0 / (num_rows - first_row)
    return q


class CandidateSampler(tf.Module):
    """Draws negatives with replacement from a fixed proposal Q by inverse-CDF search.

    O(N log V) per draw of N, after an O(V) set-up; works for millions of rows, unlike
    `tf.random.log_uniform_candidate_sampler`, which assumes ids sorted by frequency.

    Args:
      probabilities: [V] Q over embedding rows.
      seed: seeds the draws; None = non-deterministic. The draws come from a
        `tf.random.Generator`, whose state is a variable: a checkpoint of the model holds it, so
        training resumed from a checkpoint draws what an uninterrupted run would have.
    """

    def __init__(self, probabilities, seed=None, name=None):
        super().__init__(name=name)
        probabilities = np.asarray(probabilities, dtype=np.float64)
        self.probabilities = tf.constant(probabilities, tf.float32)  # [V]
        cdf = np.cumsum(probabilities)
        self.cdf = tf.constant(cdf / cdf[-1], tf.float64)  # [V]
        self.num_rows = len(probabilities)
        self.seed = seed
        self.generator = tf.random.Generator.from_non_deterministic_state() if seed is None \
            else tf.random.Generator.from_seed(seed)

    def sample(self, num):
        """[num] int64 rows drawn i.i.d. from Q."""
        u = self.generator.uniform([num], dtype=tf.float64)
        rows = tf.searchsorted(self.cdf, u, side="right")
        return tf.minimum(tf.cast(rows, tf.int64), self.num_rows - 1)

    def probability(self, rows):
        """Q(rows), same shape as rows."""
        return tf.gather(self.probabilities, rows)


class StreamingFrequencyEstimator(tf.Module):
    """Estimates each row's expected count in a training batch, from the stream of batches.

    After Yi et al. (RecSys 2019), "Sampling-bias-corrected neural modeling": per row, the gap
    between the steps it is seen in (a row seen every g steps is in a batch with probability
    1 / g) and the number of times it occurs when seen. Both are running means whose rate is
    max(alpha, 1 / sightings), so early estimates are plain averages (no start-up bias) and later
    ones follow a drifting corpus. Needs no counts in advance.

    Args:
      num_rows: rows of the embedding table.
      alpha: the slowest moving-average rate.
    """

    def __init__(self, num_rows, alpha=0.01, name=None):
        super().__init__(name=name)
        self.alpha = float(alpha)
        self.step = tf.Variable(tf.constant(0, tf.int64), trainable=False, name="step")
        self.last_seen = tf.Variable(tf.zeros([num_rows], tf.int64), trainable=False,
                                     name="last_seen")
        self.sightings = tf.Variable(tf.zeros([num_rows]), trainable=False, name="sightings")
        self.gap = tf.Variable(tf.ones([num_rows]), trainable=False, name="gap")
        self.count = tf.Variable(tf.ones([num_rows]), trainable=False, name="count")

    def update(self, rows):
        """Record one batch's rows [B]; call once per training step."""
        self.step.assign_add(1)
        rows, _, counts = tf.unique_with_counts(tf.reshape(tf.cast(rows, tf.int64), [-1]))
        idx = rows[:, None]
        sightings = tf.gather(self.sightings, rows) + 1.0
        rate = tf.maximum(self.alpha, 1.0 / sightings)
        gap_now = tf.cast(self.step - tf.gather(self.last_seen, rows), tf.float32)
        self.gap.scatter_nd_update(idx, (1 - rate) * tf.gather(self.gap, rows) + rate * gap_now)
        self.count.scatter_nd_update(idx, (1 - rate) * tf.gather(self.count, rows)
                                     + rate * tf.cast(counts, tf.float32))
        self.sightings.scatter_nd_update(idx, sightings)
        self.last_seen.scatter_nd_update(idx, tf.fill(tf.shape(rows), self.step))

    def expected_count(self, rows):
        """[...] estimated expected count of each row in one training batch (count per sighting
        / gap; for a row seen at most once per batch, the probability that a batch holds it); a
        row never seen gets 1 / (steps so far + 1), the rarest rate observable."""
        seen = tf.gather(self.sightings, rows) > 0
        estimate = tf.gather(self.count, rows) / tf.maximum(tf.gather(self.gap, rows), 1e-6)
        unseen = 1.0 / (tf.cast(self.step, tf.float32) + 1.0)
        return tf.where(seen, estimate, unseen)
