"""The in-batch softmax: the batch's B labels are the candidates, logQ-corrected by B * P(j)."""
from tfrec.losses.corrections import RemoveAccidentalHits
from tfrec.losses.registry import register_loss
from tfrec.losses.softmax import CandidateSoftmaxLoss, SamplingPieces, softmax_cross_entropy, tf


@register_loss("in_batch")
class InBatchSoftmax(CandidateSoftmaxLoss):
    """Per row i, softmax over a pool whose first B entries are the batch's labels (row i's
    positive in column i); a pool entry equal to row i's label other than column i is removed.
    Subclasses change the pool (`candidate_pool`), e.g. the mixed loss adds sampled negatives."""

    def __init__(self, pieces: SamplingPieces) -> None:
        super().__init__(pieces)
        self.remove_hits = RemoveAccidentalHits()

    def candidate_pool(self, label_rows: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """(pool rows [C] int64, expected count of each in the pool [C] float32), C >= B, the
        first B rows being `label_rows` [B]. Here C = B, expected count B * P(j)."""
        batch = tf.shape(label_rows)[0]
        return label_rows, self.pieces.label_probability.expected_count_in_batch(label_rows,
                                                                                 batch)

    def per_example_loss(self, queries: tf.Tensor, label_rows: tf.Tensor, table: tf.Tensor,
                         bias: tf.Tensor | None = None) -> tf.Tensor:
        pool, expected = self.candidate_pool(label_rows)
        logits = tf.matmul(queries, tf.gather(table, pool), transpose_b=True)  # [B, C]
        if bias is not None:
            logits += tf.gather(bias, pool)[None, :]
        logits = self.logq_corrected(logits, expected)
        positive = tf.range(tf.shape(queries)[0])
        logits = self.remove_hits(logits, label_rows, pool, positive_column=positive)
        return softmax_cross_entropy(logits, positive)
