"""Sources of the label distribution P, which the in-batch and mixed losses' logQ needs.

An in-batch pool holds the batch's B labels, so a row j is in it B * P(j) times on average. Each
module here is one source, registered under its `candidate_generation.softmax.label_probability`
name (`tfrec.losses.registry`): a `LabelProbability` layer.
"""
from typing import Any, Self

import numpy as np

from tfrec.config.schema import SoftmaxConfig
from tfrec.tf_keras2 import tf


class LabelProbability(tf.keras.layers.Layer):
    """Base of the label-probability sources: knows how often a row is among a batch's labels."""

    @classmethod
    def from_softmax_config(cls, config: SoftmaxConfig, label_probabilities: np.ndarray
                            ) -> Self:
        """The source for a SoftmaxConfig and the [V] training label distribution P."""
        raise NotImplementedError(f"{cls.__name__}: a label-probability source defines "
                                  "from_softmax_config")

    def update(self, label_rows: tf.Tensor) -> Any:
        """Record one training batch's label rows [B] (call once per training step); the
        default keeps no state."""
        return None  # a body beyond the docstring, which AutoGraph needs

    def expected_count_in_batch(self, rows: tf.Tensor, batch_size: int | tf.Tensor
                                ) -> tf.Tensor:
        """[...] float32 expected number of times each of `rows` [...] is among the labels of a
        training batch of `batch_size` (scalar int) examples."""
        raise NotImplementedError(f"{type(self).__name__}: a label-probability source defines "
                                  "expected_count_in_batch")
