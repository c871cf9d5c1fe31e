"""The two corrections of a sampled softmax's logits, as stateless Keras layers.

In the style of TFRS' `tfrs.layers.loss.SamplingProbablityCorrection` and `RemoveAccidentalHits`,
with the conventions of `tf.nn.sampled_softmax_loss`: the logQ correction subtracts the log of a
candidate's expected count in the pool (not of a probability), and a removed candidate's logit is
replaced by a very negative constant (not shifted), so the remaining logits are unchanged.
"""
from tfrec.tf_keras2 import tf

# Logit for removed candidates: very negative but finite, so no NaN when everything is masked.
MIN_LOGIT = -1e9


@tf.keras.utils.register_keras_serializable(package="tfrec")
class LogQCorrection(tf.keras.layers.Layer):
    """logits - log(expected counts): a popular candidate's logit goes down (Bengio & Senecal;
    Yi et al. 2019), so the sampled softmax's gradient estimates the full softmax's.

    Call args:
      logits: [B, C] (or [B]).
      expected_counts: [C] or [B, C] (or [B]): expected number of times each candidate is in the
        pool, > 0.
    Returns:
      the corrected logits, shaped as `logits`.
    """

    def call(self, logits: tf.Tensor, expected_counts: tf.Tensor) -> tf.Tensor:
        return logits - tf.math.log(tf.cast(expected_counts, logits.dtype))


@tf.keras.utils.register_keras_serializable(package="tfrec")
class RemoveAccidentalHits(tf.keras.layers.Layer):
    """Masks the pool entries equal to the row's label, other than the row's positive itself.

    Call args:
      logits: [B, C].
      label_rows: [B] int row of each example's label.
      pool_rows: [C] int row of each pool candidate.
      positive_column: [B] int column of each row's positive, which is kept; None = mask every
        hit (the positive is not in `logits`).
    Returns:
      [B, C]: `logits` with every hit set to MIN_LOGIT.
    """

    def call(self, logits: tf.Tensor, label_rows: tf.Tensor, pool_rows: tf.Tensor,
             positive_column: tf.Tensor | None = None) -> tf.Tensor:
        hits = tf.equal(label_rows[:, None], pool_rows[None, :])
        if positive_column is not None:
            hits = tf.logical_and(hits, tf.logical_not(
                tf.one_hot(positive_column, tf.shape(logits)[1], on_value=True, off_value=False)))
        return tf.where(hits, tf.cast(MIN_LOGIT, logits.dtype), logits)
