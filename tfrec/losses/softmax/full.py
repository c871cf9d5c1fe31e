"""The full softmax: every row of the table is a candidate (the reference the others estimate)."""
from tfrec.losses.registry import register_loss
from tfrec.losses.softmax import CandidateSoftmaxLoss, softmax_cross_entropy, tf


@register_loss("full")
class FullSoftmax(CandidateSoftmaxLoss):
    """Exact cross-entropy of softmax(u . v_j + b_j) over all V rows; O(B V d) per batch."""

    def per_example_loss(self, queries: tf.Tensor, label_rows: tf.Tensor, table: tf.Tensor,
                         bias: tf.Tensor | None = None) -> tf.Tensor:
        logits = tf.matmul(queries, table, transpose_b=True)
        if bias is not None:
            logits += bias[None, :]
        return softmax_cross_entropy(logits, label_rows)
