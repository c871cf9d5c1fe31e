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
      seed: op seed, for reproducibility.
    """

    def __init__(self, probabilities, seed=None, name=None):
        super().__init__(name=name)
        probabilities = np.asarray(probabilities, dtype=np.float64)
        self.probabilities = tf.constant(probabilities, tf.float32)  # [V]
        cdf = np.cumsum(probabilities)
        self.cdf = tf.constant(cdf / cdf[-1], tf.float64)  # [V]
        self.num_rows = len(probabilities)
        self.seed = seed

    def sample(self, num):
        """[num] int64 rows drawn i.i.d. from Q."""
        u = tf.random.uniform([num], dtype=tf.float64, seed=self.seed)
        rows = tf.searchsorted(self.cdf, u, side="right")
        return tf.minimum(tf.cast(rows, tf.int64), self.num_rows - 1)

    def probability(self, rows):
        """Q(rows), same shape as rows."""
        return tf.gather(self.probabilities, rows)


class StreamingFrequencyEstimator(tf.Module):
    """Estimates how often each row appears in a training batch, from the stream of batches.

    Yi et al. (RecSys 2019), "Sampling-bias-corrected neural modeling": per row, A = the last step
    it was seen and B = a moving average of the gap between sightings; a row seen every B steps
    appears in a batch with probability about 1 / B. Needs no counts in advance, so it follows a
    corpus whose popularity drifts.

    Args:
      num_rows: rows of the embedding table.
      alpha: moving-average rate of the gap estimate.
      initial_gap: the gap assumed for a row never seen (large = rare).
    """

    def __init__(self, num_rows, alpha=0.01, initial_gap=None, name=None):
        super().__init__(name=name)
        self.alpha = float(alpha)
        self.step = tf.Variable(0.0, trainable=False, name="step")
        self.last_seen = tf.Variable(tf.zeros([num_rows]), trainable=False, name="last_seen")
        self.gap = tf.Variable(tf.fill([num_rows], float(initial_gap or num_rows)),
                               trainable=False, name="gap")

    def update(self, rows):
        """Record one batch's rows [B]; call once per training step, before `probability`."""
        self.step.assign_add(1.0)
        rows, _ = tf.unique(tf.reshape(rows, [-1]))
        seen_before = tf.gather(self.last_seen, rows) > 0
        gap = tf.gather(self.gap, rows)
        new_gap = tf.where(seen_before, (1 - self.alpha) * gap + self.alpha * (
            self.step - tf.gather(self.last_seen, rows)), gap)
        self.gap.scatter_nd_update(rows[:, None], new_gap)
        self.last_seen.scatter_nd_update(rows[:, None], tf.fill(tf.shape(rows), self.step))

    def probability(self, rows):
        """[...] estimated probability that each row is in a batch (= its expected count)."""
        return 1.0 / tf.maximum(tf.gather(self.gap, rows), 1.0)
