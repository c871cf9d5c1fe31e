"""Mixed negative sampling (Yang et al. 2020): the batch's labels + N negatives drawn from Q."""
from typing import Any

from tfrec.losses.label_probability import LabelProbability
from tfrec.losses.registry import register_loss
from tfrec.losses.samplers import CandidateSampler
from tfrec.losses.softmax import SamplingPieces, tf
from tfrec.losses.softmax.in_batch import InBatchSoftmax


@tf.keras.utils.register_keras_serializable(package="tfrec")
class MixedPool(tf.keras.layers.Layer):
    """The mixed loss's candidates: the batch's B labels, then N negatives drawn from Q; a row's
    expected count in that pool is B * P(j) + N * Q(j).

    Args:
      sampler: `tfrec.losses.samplers.CandidateSampler` (Q; its draws advance its state).
      label_probability: a `tfrec.losses.label_probability.LabelProbability` (B * P(j)).
      num_negatives: N.
    Call args:
      label_rows: [B] int64.
    Returns:
      (pool rows [B + N] int64, expected count of each in the pool [B + N] float32).
    """

    def __init__(self, sampler: CandidateSampler, label_probability: LabelProbability,
                 num_negatives: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.sampler = sampler
        self.label_probability = label_probability
        self.num_negatives = int(num_negatives)

    def call(self, label_rows: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        negatives = self.sampler.sample(self.num_negatives)
        pool = tf.concat([label_rows, negatives], axis=0)
        batch = tf.shape(label_rows)[0]
        expected = self.label_probability.expected_count_in_batch(pool, batch) + \
            self.sampler.expected_count_in_sample(pool, self.num_negatives)
        return pool, expected

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "num_negatives": self.num_negatives,
                "sampler": tf.keras.layers.serialize(self.sampler),
                "label_probability": tf.keras.layers.serialize(self.label_probability)}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "MixedPool":
        config = dict(config)
        for key in ("sampler", "label_probability"):
            config[key] = tf.keras.layers.deserialize(config[key])
        return cls(**config)


@register_loss("mixed")
class MixedSoftmax(InBatchSoftmax):
    """The in-batch loss over the `MixedPool`: more negatives than B, and rare ones too."""

    def __init__(self, pieces: SamplingPieces) -> None:
        super().__init__(pieces)
        self.pool = MixedPool(pieces.sampler, pieces.label_probability, pieces.num_negatives)

    def candidate_pool(self, label_rows: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        return self.pool(label_rows)
