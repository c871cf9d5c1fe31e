"""Weighted logistic regression for expected watch time (Covington et al. 2016, sec. 4.2).

The ranker is a logistic regression on "clicked" whose examples carry weights: a clicked
impression is weighted by its watch time T_i (seconds), an impression that was not clicked by 1.
The weights reach the loss as `sample_weight` (e.g. through `tfrs.tasks.Ranking`).

Why exp(logit) estimates expected watch time. Take N impressions that look the same to the model
(same features x); k of them were clicked, with watch times T_1..T_k. The weighted log-likelihood
  sum_{clicked} T_i log p + (N - k) log(1 - p)
is maximised at p / (1 - p) = sum_i T_i / (N - k), so the learned odds exp(logit) are
  odds = sum_i T_i / (N - k) = (sum_i T_i / N) * N / (N - k) = E[T] / (1 - P) ≈ E[T] (1 + P),
where E[T] = sum_i T_i / N is the expected watch time of an impression (0 for no click) and
P = k / N the click probability. When P is small the odds are close to E[T]; the bias 1 / (1 - P)
is known exactly when a click head estimates P (see `tfrec.models.ranking`).

Negative subsampling. Keeping each negative with probability r divides N - k by r in expectation, so
the odds learned on the subsample are E[T] / ((1 - P) r): add log(r) to the logit to undo it (or,
equivalently, weight the kept negatives by 1 / r).

Every impression a negative (`watch_time_loss`). When clicks are common the 1 / (1 - P) bias is
large (a page's first slot is clicked far more often than 1 time in 10). Counting every impression
as a negative of weight 1, and each clicked one also as a positive of weight T_i, the likelihood
  sum_{clicked} T_i log p + N log(1 - p)
is maximised at odds = sum_i T_i / N = E[T] exactly, for any P. Per impression, with the target
t_i = T_i when clicked and 0 otherwise, the loss is t_i softplus(-z) + softplus(z). Subsampled
negatives are weighted by 1 / r here (the shift by log(r) is exact only for the paper's loss).
"""
from collections.abc import Callable
from typing import Any

from tfrec.tf_keras2 import tf


def watch_time_weights(clicked: tf.Tensor, watch_time: tf.Tensor) -> tf.Tensor:
    """[B] weights of the weighted LR: watch_time where clicked, 1 elsewhere.

    Args:
      clicked: [B] 0/1 (any numeric dtype).
      watch_time: [B] seconds, >= 0.
    """
    clicked = tf.cast(clicked, tf.float32)
    return clicked * tf.cast(watch_time, tf.float32) + (1.0 - clicked)


def weighted_logistic_loss(labels: tf.Tensor, logits: tf.Tensor,
                           sample_weight: tf.Tensor | None = None) -> tf.Tensor:
    """[B] per-example weighted binary cross-entropy from logits.

    loss_i = w_i * -(y_i log sigmoid(z_i) + (1 - y_i) log(1 - sigmoid(z_i))), computed stably
    (tf.nn.sigmoid_cross_entropy_with_logits).

    Args:
      labels: [B] or [B, 1] 0/1.
      logits: [B] or [B, 1].
      sample_weight: [B] or None (weight 1).
    """
    labels = tf.reshape(tf.cast(labels, tf.float32), [-1])
    logits = tf.reshape(tf.cast(logits, tf.float32), [-1])
    per_example = tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits)
    if sample_weight is not None:
        per_example *= tf.reshape(tf.cast(sample_weight, tf.float32), [-1])
    return per_example


def watch_time_loss(watch_time_target: tf.Tensor, logits: tf.Tensor,
                    sample_weight: tf.Tensor | None = None) -> tf.Tensor:
    """[B] per-example loss of the every-impression-a-negative weighted LR (module docstring).

    loss_i = w_i * (t_i * softplus(-z_i) + softplus(z_i)): minimised at exp(z) = E[t | x].

    Args:
      watch_time_target: [B] or [B, 1] t_i, seconds: the watch time when clicked, else 0.
      logits: [B] or [B, 1].
      sample_weight: [B] or None (weight 1).
    """
    target = tf.reshape(tf.cast(watch_time_target, tf.float32), [-1])
    logits = tf.reshape(tf.cast(logits, tf.float32), [-1])
    per_example = target * tf.nn.softplus(-logits) + tf.nn.softplus(logits)
    if sample_weight is not None:
        per_example *= tf.reshape(tf.cast(sample_weight, tf.float32), [-1])
    return per_example


class _BatchMeanLoss(tf.keras.losses.Loss):
    """A per-example loss function as a Keras loss: sum_i loss_i / B (the batch mean).

    The mean over the batch (not over the weights) keeps every impression's contribution
    proportional to its weight whatever batch it lands in, so the optima are the ones derived in
    the module docstring. Subclasses set `per_example` (labels, logits, sample_weight) -> [B].
    """

    per_example: Callable[..., tf.Tensor]  # set by each subclass

    def __init__(self, name: str, **kwargs: Any) -> None:
        kwargs.setdefault("reduction", tf.keras.losses.Reduction.NONE)
        super().__init__(name=name, **kwargs)

    def __call__(self, y_true: tf.Tensor, y_pred: tf.Tensor,
                 sample_weight: tf.Tensor | None = None) -> tf.Tensor:
        return tf.reduce_mean(type(self).per_example(y_true, y_pred, sample_weight))

    def call(self, y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
        return type(self).per_example(y_true, y_pred)


class WeightedLogisticLoss(_BatchMeanLoss):
    """`weighted_logistic_loss` (weighted BCE from logits) as a Keras loss, for
    `tfrs.tasks.Ranking(loss=WeightedLogisticLoss())`."""

    per_example = staticmethod(weighted_logistic_loss)

    def __init__(self, name: str = "weighted_logistic_loss", **kwargs: Any) -> None:
        super().__init__(name=name, **kwargs)


class WatchTimeLoss(_BatchMeanLoss):
    """`watch_time_loss` as a Keras loss: y_true is the watch-time target t (seconds, 0 when not
    clicked), y_pred the logit."""

    per_example = staticmethod(watch_time_loss)

    def __init__(self, name: str = "watch_time_loss", **kwargs: Any) -> None:
        super().__init__(name=name, **kwargs)
