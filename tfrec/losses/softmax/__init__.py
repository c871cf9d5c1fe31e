"""Softmax losses for candidate generation: full, sampled (logQ), in-batch (logQ) and mixed.

The model predicts P(w_t = i | U, C) = softmax_i(u . v_i + b_i) over the whole corpus. The sampled
losses replace the corpus by a pool of candidates and correct every logit by subtracting
log(expected number of times that candidate is in the pool), the logQ correction, so that the
gradient estimates the full-softmax gradient (Bengio & Senecal; Yi et al. 2019):

  sampled   pool = the positive + N negatives drawn (with replacement) from a proposal Q:
            expected count of j = N * Q(j)      (the positive is corrected by N * Q(label) too,
            exactly as `tf.nn.sampled_softmax_loss` does)
  in-batch  pool = the B labels of the batch, drawn from the label distribution P:
            expected count of j = B * P(j)
  mixed     pool = the B batch labels + N negatives from Q (Yang et al. 2020):
            expected count of j = B * P(j) + N * Q(j)

A pool entry equal to the row's label other than the positive itself (an accidental hit) is
removed (`tfrec.losses.corrections`).

Each loss is one module of this package, named as in `candidate_generation.softmax.loss`, whose
class is registered under that name (`tfrec.losses.registry`). To add one: write
`tfrec/losses/softmax/<name>.py` with

    @register_loss("<name>")
    class MyLoss(CandidateSoftmaxLoss):
        def per_example_loss(self, queries: tf.Tensor, label_rows: tf.Tensor,
                             table: tf.Tensor, bias: tf.Tensor | None = None) -> tf.Tensor: ...

and its test; the config accepts the name and `CandidateSoftmaxTask` runs it.
"""
import abc
import dataclasses
import typing

from tfrec.losses.corrections import LogQCorrection
from tfrec.tf_keras2 import tf


@dataclasses.dataclass(frozen=True)
class SamplingPieces:
    """What the losses share, owned by `CandidateSoftmaxTask` (one sampler state per model).

    Attributes:
      sampler: `tfrec.losses.samplers.CandidateSampler`, negatives from Q.
      label_probability: a `tfrec.losses.label_probability.LabelProbability`, how often a row is
        among a batch's labels (B * P(j)).
      num_negatives: N, negatives drawn per batch by the losses that draw.
      logq_correction: subtract log expected counts (off only to show why it matters).
    """

    sampler: typing.Any
    label_probability: typing.Any
    num_negatives: int
    logq_correction: bool = True


def softmax_cross_entropy(logits: tf.Tensor, positive_column: tf.Tensor) -> tf.Tensor:
    """[B] -log softmax(logits [B, C])[positive_column [B] int]."""
    return tf.nn.sparse_softmax_cross_entropy_with_logits(labels=positive_column, logits=logits)


class CandidateSoftmaxLoss(abc.ABC):
    """Base of the losses: the per-example loss of user vectors against their label rows.

    Args:
      pieces: SamplingPieces.
    Class attribute `name`: the config name, set by `register_loss`.
    """

    name: str | None = None

    def __init__(self, pieces: SamplingPieces) -> None:
        self.pieces = pieces
        self.logq = LogQCorrection()

    def logq_corrected(self, logits: tf.Tensor, expected_counts: tf.Tensor) -> tf.Tensor:
        """logits - log(expected_counts) (`LogQCorrection`), or logits when the correction is
        off."""
        if not self.pieces.logq_correction:
            return logits
        return self.logq(logits, expected_counts)

    @abc.abstractmethod
    def per_example_loss(self, queries: tf.Tensor, label_rows: tf.Tensor, table: tf.Tensor,
                         bias: tf.Tensor | None = None) -> tf.Tensor:
        """Args:
          queries: [B, d] user vectors u.
          label_rows: [B] int64 row of each label in `table`.
          table: [V, d] output video embeddings v_j.
          bias: [V] b_j, or None.
        Returns:
          [B] float32 loss of each example (nats).
        """
        # Abstract: each registered loss module defines it.
        raise NotImplementedError
