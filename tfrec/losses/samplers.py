"""Negative proposals Q over the video rows, and the sampler that draws negatives from Q."""
from typing import Any

import numpy as np
import numpy.typing as npt

from tfrec.tf_keras2 import tf


def unigram_probabilities(counts: npt.ArrayLike, alpha: float = 1.0) -> np.ndarray:
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


def uniform_probabilities(num_rows: int, first_row: int = 0) -> np.ndarray:
    """Q uniform over rows [first_row, num_rows) (rows before are padding / OOV)."""
    q = np.zeros(num_rows)
    q[first_row:] = 1.0 / (num_rows - first_row)
    return q


@tf.keras.utils.register_keras_serializable(package="tfrec")
class CandidateSampler(tf.keras.layers.Layer):
    """Draws negatives with replacement from a fixed proposal Q by inverse-CDF search.

    O(N log V) per draw of N, after an O(V) set-up; works for millions of rows, unlike
    `tf.random.log_uniform_candidate_sampler`, which assumes ids sorted by frequency.

    Args:
      probabilities: [V] Q over embedding rows.
      seed: seeds the draws; None = non-deterministic. The draws come from a
        `tf.random.Generator`, whose state is a variable: a checkpoint of the model holds it, so
        training resumed from a checkpoint draws what an uninterrupted run would have. A layer
        made by `from_config` starts from the seed again (its draws are those of a new layer).
    """

    def __init__(self, probabilities: npt.ArrayLike, seed: int | None = None, **kwargs: Any
                 ) -> None:
        super().__init__(**kwargs)
        probabilities = np.asarray(probabilities, dtype=np.float64)
        self._config_probabilities = probabilities
        self.probabilities = tf.constant(probabilities, tf.float32)  # [V]
        cdf = np.cumsum(probabilities)
        self.cdf = tf.constant(cdf / cdf[-1], tf.float64)  # [V]
        self.num_rows = len(probabilities)
        self.seed = seed
        self.generator = tf.random.Generator.from_non_deterministic_state() if seed is None \
            else tf.random.Generator.from_seed(seed)

    def sample(self, num: int | tf.Tensor) -> tf.Tensor:
        """[num] int64 rows drawn i.i.d. from Q."""
        u = self.generator.uniform([num], dtype=tf.float64)
        rows = tf.searchsorted(self.cdf, u, side="right")
        return tf.minimum(tf.cast(rows, tf.int64), self.num_rows - 1)

    def proposal_probability(self, rows: tf.Tensor) -> tf.Tensor:
        """Q(rows) float32, same shape as rows."""
        return tf.gather(self.probabilities, rows)

    def expected_count_in_sample(self, rows: tf.Tensor, num_samples: int | tf.Tensor
                                 ) -> tf.Tensor:
        """num_samples * Q(rows) float32: how often each row is expected among `num_samples`
        draws (same shape as rows)."""
        return tf.cast(num_samples, tf.float32) * self.proposal_probability(rows)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "probabilities": self._config_probabilities.tolist(),
                "seed": self.seed}
