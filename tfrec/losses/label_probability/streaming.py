"""P estimated from the stream of training batches (Yi et al. 2019), with no counts in advance."""
from typing import Any, Self

import numpy as np

from tfrec.config.schema import SoftmaxConfig
from tfrec.losses.label_probability import LabelProbability, tf
from tfrec.losses.registry import register_label_probability


@register_label_probability("streaming")
@tf.keras.utils.register_keras_serializable(package="tfrec")
class StreamingFrequencyEstimator(LabelProbability):
    """Estimates each row's expected count in a training batch, from the stream of batches.

    After Yi et al. (RecSys 2019), "Sampling-bias-corrected neural modeling": per row, the gap
    between the steps it is seen in (a row seen every g steps is in a batch with probability
    1 / g) and the number of times it occurs when seen. Both are running means whose rate is
    max(alpha, 1 / sightings), so early estimates are plain averages (no start-up bias) and later
    ones follow a drifting corpus.

    The state (step, and per row: last_seen, sightings, gap, count) is non-trainable layer
    weights, so a checkpoint of the model holds it and a resumed run goes on estimating where it
    stopped. `from_config` makes a fresh estimator (copy the weights to carry the state over).

    Args:
      num_rows: rows of the embedding table, V.
      alpha: the slowest moving-average rate, in (0, 1].
    """

    def __init__(self, num_rows: int, alpha: float = 0.01, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.num_rows = int(num_rows)
        self.alpha = float(alpha)

        def state(name: str, shape: tuple[int, ...], dtype: tf.DType, initializer: str
                  ) -> tf.Variable:
            return self.add_weight(name=name, shape=shape, dtype=dtype, initializer=initializer,
                                   trainable=False)
        self.step = state("step", (), tf.int64, "zeros")
        self.last_seen = state("last_seen", (self.num_rows,), tf.int64, "zeros")
        self.sightings = state("sightings", (self.num_rows,), tf.float32, "zeros")
        self.gap = state("gap", (self.num_rows,), tf.float32, "ones")
        self.count = state("count", (self.num_rows,), tf.float32, "ones")

    @classmethod
    def from_softmax_config(cls, config: SoftmaxConfig, label_probabilities: np.ndarray
                            ) -> Self:
        return cls(len(label_probabilities), config.streaming_alpha)

    def update(self, label_rows: tf.Tensor) -> None:
        """Record one batch's label rows [B]; call once per training step."""
        self.step.assign_add(1)
        rows, _, counts = tf.unique_with_counts(tf.reshape(tf.cast(label_rows, tf.int64), [-1]))
        idx = rows[:, None]
        sightings = tf.gather(self.sightings, rows) + 1.0
        rate = tf.maximum(self.alpha, 1.0 / sightings)
        gap_now = tf.cast(self.step - tf.gather(self.last_seen, rows), tf.float32)
        self.gap.scatter_nd_update(idx, (1 - rate) * tf.gather(self.gap, rows) + rate * gap_now)
        self.count.scatter_nd_update(idx, (1 - rate) * tf.gather(self.count, rows)
                                     + rate * tf.cast(counts, tf.float32))
        self.sightings.scatter_nd_update(idx, sightings)
        self.last_seen.scatter_nd_update(idx, tf.fill(tf.shape(rows), self.step))

    def expected_count_in_batch(self, rows: tf.Tensor, batch_size: int | tf.Tensor | None = None
                                ) -> tf.Tensor:
        """[...] estimated expected count of each row in one training batch (count per sighting
        / gap; for a row seen at most once per batch, the probability that a batch holds it); a
        row never seen gets 1 / (steps so far + 1), the rarest rate observable. The estimate is
        of the batches seen, so `batch_size` is not used."""
        seen = tf.gather(self.sightings, rows) > 0
        estimate = tf.gather(self.count, rows) / tf.maximum(tf.gather(self.gap, rows), 1e-6)
        unseen = 1.0 / (tf.cast(self.step, tf.float32) + 1.0)
        return tf.where(seen, estimate, unseen)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "num_rows": self.num_rows, "alpha": self.alpha}
