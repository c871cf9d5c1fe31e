"""The sampled softmax: the positive + N negatives from Q shared by the batch, logQ-corrected."""
from tfrec.losses.corrections import RemoveAccidentalHits
from tfrec.losses.registry import register_loss
from tfrec.losses.softmax import CandidateSoftmaxLoss, SamplingPieces, softmax_cross_entropy, tf


@register_loss("sampled")
class SampledSoftmax(CandidateSoftmaxLoss):
    """Per row, softmax over [its positive, the N negatives]; each logit corrected by
    log(N * Q(j)), the positive's too (as `tf.nn.sampled_softmax_loss`), and a negative equal to
    the row's label removed. The positive is column 0."""

    def __init__(self, pieces: SamplingPieces) -> None:
        super().__init__(pieces)
        self.remove_hits = RemoveAccidentalHits()

    def per_example_loss(self, queries: tf.Tensor, label_rows: tf.Tensor, table: tf.Tensor,
                         bias: tf.Tensor | None = None) -> tf.Tensor:
        sampler, num = self.pieces.sampler, self.pieces.num_negatives
        negatives = sampler.sample(num)  # [N]
        true_logit = tf.reduce_sum(queries * tf.gather(table, label_rows), axis=1)  # [B]
        neg_logits = tf.matmul(queries, tf.gather(table, negatives), transpose_b=True)  # [B, N]
        if bias is not None:
            true_logit += tf.gather(bias, label_rows)
            neg_logits += tf.gather(bias, negatives)[None, :]
        true_logit = self.logq_corrected(true_logit,
                                         sampler.expected_count_in_sample(label_rows, num))
        neg_logits = self.logq_corrected(neg_logits,
                                         sampler.expected_count_in_sample(negatives, num))
        neg_logits = self.remove_hits(neg_logits, label_rows, negatives)
        logits = tf.concat([true_logit[:, None], neg_logits], axis=1)
        return softmax_cross_entropy(logits, tf.zeros(tf.shape(queries)[0], tf.int32))
