"""P from the training data's label counts: a row is in a batch of B labels B * P(j) times."""
from typing import Any, Self

import numpy as np
import numpy.typing as npt

from tfrec.config.schema import SoftmaxConfig

from tfrec.losses.label_probability import LabelProbability, tf
from tfrec.losses.registry import register_label_probability


@register_label_probability("counts")
@tf.keras.utils.register_keras_serializable(package="tfrec")
class LabelCounts(LabelProbability):
    """Expected count B * P(j), P the label distribution counted over the training data.

    Args:
      label_probabilities: [V] P(j) over embedding rows (sums to 1).
    """

    def __init__(self, label_probabilities: npt.ArrayLike, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._config_probabilities = np.asarray(label_probabilities, dtype=np.float64)
        self.label_probabilities = tf.constant(self._config_probabilities, tf.float32)  # [V]

    @classmethod
    def from_softmax_config(cls, config: SoftmaxConfig, label_probabilities: np.ndarray
                            ) -> Self:
        return cls(label_probabilities)

    def expected_count_in_batch(self, rows: tf.Tensor, batch_size: int | tf.Tensor
                                ) -> tf.Tensor:
        return tf.cast(batch_size, tf.float32) * tf.gather(self.label_probabilities, rows)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(),
                "label_probabilities": self._config_probabilities.tolist()}
