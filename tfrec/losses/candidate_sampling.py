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
removed. All functions return the per-example loss [B]; shapes are given in brackets.
"""
import tensorflow as tf

# Logit for removed candidates: very negative but finite, so no NaN when everything is masked.
MIN_LOGIT = -1e9


def logq_correction(logits, expected_counts):
    """logits [B, C] - log(expected_counts [C] or [B, C]). A popular candidate's logit goes down."""
    return logits - tf.math.log(tf.cast(expected_counts, logits.dtype))


def remove_accidental_hits(logits, label_ids, pool_ids, positive_column=None):
    """Mask pool entries whose id equals the row's label (except the true positive column).

    Args:
      logits: [B, C].
      label_ids: [B] int ids of each row's label.
      pool_ids: [C] int ids of the pool's candidates.
      positive_column: [B] column of each row's positive, kept; None = mask every hit.
    """
    hits = tf.equal(label_ids[:, None], pool_ids[None, :])
    if positive_column is not None:
        hits = tf.logical_and(hits, tf.logical_not(
            tf.one_hot(positive_column, tf.shape(logits)[1], on_value=True, off_value=False)))
    return tf.where(hits, tf.cast(MIN_LOGIT, logits.dtype), logits)


def _softmax_xent(logits, positive_column):
    return tf.nn.sparse_softmax_cross_entropy_with_logits(labels=positive_column, logits=logits)


def full_softmax_loss(queries, table, labels, bias=None):
    """Exact softmax over every row of `table`.

    Args:
      queries: [B, d] user vectors u.
      table: [V, d] output video embeddings.
      labels: [B] int row of each label in `table`.
      bias: [V] or None.
    Returns:
      [B] cross-entropy.
    """
    logits = tf.matmul(queries, table, transpose_b=True)
    if bias is not None:
        logits += bias[None, :]
    return _softmax_xent(logits, labels)


def sampled_softmax_loss(queries, label_emb, label_ids, label_expected, neg_emb, neg_ids,
                         neg_expected, label_bias=None, neg_bias=None):
    """Sampled softmax with negatives shared by the batch, logQ-corrected, hits removed.

    Args:
      queries: [B, d]; label_emb: [B, d]; label_ids: [B] int; label_expected: [B] = N * Q(label).
      neg_emb: [N, d]; neg_ids: [N] int; neg_expected: [N] = N * Q(neg).
      label_bias: [B] or None; neg_bias: [N] or None.
    Returns:
      [B] cross-entropy with the positive in column 0.
    """
    true_logit = tf.reduce_sum(queries * label_emb, axis=1)
    neg_logits = tf.matmul(queries, neg_emb, transpose_b=True)
    if label_bias is not None:
        true_logit += label_bias
        neg_logits += neg_bias[None, :]
    true_logit = true_logit - tf.math.log(tf.cast(label_expected, true_logit.dtype))
    neg_logits = logq_correction(neg_logits, neg_expected)
    neg_logits = remove_accidental_hits(neg_logits, label_ids, neg_ids)
    logits = tf.concat([true_logit[:, None], neg_logits], axis=1)
    return _softmax_xent(logits, tf.zeros(tf.shape(queries)[0], tf.int32))


def pool_softmax_loss(queries, pool_emb, pool_ids, pool_expected, label_ids, pool_bias=None):
    """Softmax over a pool whose first B entries are the batch's labels (in-batch and mixed).

    Args:
      queries: [B, d].
      pool_emb: [C, d], C >= B; row i < B is query i's positive, the rest are extra negatives.
      pool_ids: [C] int; pool_expected: [C] expected count of each pool entry in the pool.
      label_ids: [B] int (= pool_ids[:B]).
      pool_bias: [C] or None.
    Returns:
      [B] cross-entropy with the positive of row i in column i.
    """
    logits = tf.matmul(queries, pool_emb, transpose_b=True)
    if pool_bias is not None:
        logits += pool_bias[None, :]
    logits = logq_correction(logits, pool_expected)
    positive = tf.range(tf.shape(queries)[0])
    logits = remove_accidental_hits(logits, label_ids, pool_ids, positive_column=positive)
    return _softmax_xent(logits, positive)
