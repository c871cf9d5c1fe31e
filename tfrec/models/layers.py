"""Small Keras layers of the user tower, each serialisable (get_config)."""
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from tfrec.tf_keras2 import tf


def relu_tower(x: tf.Tensor, hidden_units: Sequence[int],
               regularizer: tf.keras.regularizers.Regularizer | None = None, dropout: float = 0.0,
               seed: int = 0) -> tf.Tensor:
    """Functional ReLU layers relu_0, relu_1, ... of the given widths (resumable dropout after
    each, its masks a function of (seed, step); see ResumableDropout)."""
    for i, units in enumerate(hidden_units):
        x = tf.keras.layers.Dense(units, activation="relu", kernel_regularizer=regularizer,
                                  name=f"relu_{i}")(x)
        if dropout:
            x = ResumableDropout(dropout, seed=1000 * seed + i, name=f"dropout_{i}")(x)
    return x


class MaskedMean(tf.keras.layers.Layer):
    """Average of the embeddings whose mask is True; zeros for an all-padding row.

    Call args:
      embeddings: [B, L, d].
      mask: [B, L] bool.
    Returns:
      [B, d].
    """

    def call(self, embeddings: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
        weights = tf.cast(mask, embeddings.dtype)[..., None]  # [B, L, 1]
        total = tf.reduce_sum(embeddings * weights, axis=1)
        count = tf.reduce_sum(weights, axis=1)
        return tf.math.divide_no_nan(total, count)


class ExampleAgeFeatures(tf.keras.layers.Layer):
    """Example age (seconds) -> output_scale * [x, x^2], x = age / scale_seconds, as the paper
    feeds it.

    Args:
      scale_seconds: the training window's largest example age, so training ages map to [0, 1].
        At serving the age is 0, which asks the model for the end of the training window.
      output_scale: the features' size beside the tower's other inputs. Averaged embeddings
        start at about 0.01-0.05 per component (Keras' uniform(-0.05, 0.05)); an unscaled x of
        0.5 dominates the first layer from the start, and on the simulated world under P3 that
        cost about a third of Recall@100 (docs/DESIGN_NOTES.md, "Example age").
    Call args:
      example_age: [B] float seconds.
    Returns:
      [B, 2].
    """

    def __init__(self, scale_seconds: float, output_scale: float = 1.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.scale_seconds = float(scale_seconds)
        self.output_scale = float(output_scale)

    def call(self, example_age: tf.Tensor) -> tf.Tensor:
        x = tf.cast(example_age, tf.float32) / max(self.scale_seconds, 1.0)
        return self.output_scale * tf.stack([x, tf.square(x)], axis=-1)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "scale_seconds": self.scale_seconds,
                "output_scale": self.output_scale}


class ResumableDropout(tf.keras.layers.Layer):
    """Dropout whose masks are a function of (seed, training step), so training resumed from a
    checkpoint draws the same masks as an uninterrupted run.

    Keras' Dropout draws from random-op state that no checkpoint holds; here each training call
    uses `tf.nn.experimental.stateless_dropout` seeded by [seed, step], and `step` is a
    (non-trainable) layer weight, saved and restored with the model.

    Args:
      rate: fraction of units dropped in training.
      seed: int; layers with different seeds draw different masks.
    Call args:
      inputs: [B, d]; training: bool.
    Returns:
      [B, d]: inputs with dropped units zeroed and the rest scaled by 1 / (1 - rate); inputs
      unchanged when not training.
    """

    def __init__(self, rate: float, seed: int = 0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.rate = float(rate)
        self.seed = int(seed)

    def build(self, input_shape: tf.TensorShape) -> None:
        self.step = self.add_weight(name="step", shape=(), dtype=tf.int64, initializer="zeros",
                                    trainable=False)
        super().build(input_shape)

    def call(self, inputs: tf.Tensor, training: bool | tf.Tensor | None = None) -> tf.Tensor:
        if training is None:
            training = tf.keras.backend.learning_phase()
        if isinstance(training, (bool, int)) and not training:
            return inputs

        def dropped() -> tf.Tensor:
            step = self.step.assign_add(1)
            seed = tf.stack([tf.constant(self.seed, tf.int64), step])
            return tf.nn.experimental.stateless_dropout(inputs, self.rate, seed=seed)

        if isinstance(training, (bool, int)):
            return dropped()
        return tf.cond(tf.cast(training, tf.bool), dropped, lambda: tf.identity(inputs))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}


def quantile_boundaries(values: npt.ArrayLike, quantiles: int = 100) -> np.ndarray:
    """[F, quantiles + 1] empirical quantiles (0, 1/q, ..., 1) of each column of `values`.

    Args:
      values: [n, F] training values (NaN ignored; an all-NaN column gets boundaries 0).
      quantiles: number of equal-mass buckets.
    """
    table = np.asarray(values, dtype=np.float64)
    if table.ndim != 2 or len(table) == 0:
        raise ValueError(f"quantile_boundaries needs [n > 0, F] values, got shape {table.shape}")
    if quantiles < 1:
        raise ValueError(f"quantiles must be >= 1, got {quantiles}")
    levels = np.linspace(0.0, 1.0, quantiles + 1)
    out = np.zeros((table.shape[1], quantiles + 1))
    for f in range(table.shape[1]):
        col = table[:, f][~np.isnan(table[:, f])]
        if len(col):
            out[f] = np.quantile(col, levels)
    return out


class EmpiricalCDF(tf.keras.layers.Layer):
    """Continuous features -> their training CDF x~ in [0, 1], with x~^2 and sqrt(x~) (the paper's
    normalisation, sec. 4.1).

    x~ interpolates linearly between the quantile boundaries b_0 <= ... <= b_q of the training
    data: b_j maps to j / q. A value equal to several boundaries (a point mass, e.g. a count of 0)
    maps to the middle of their levels; values below b_0 map to 0 and above b_q to 1, so unseen
    extremes stay in range. NaN maps to 0.

    Args:
      boundaries: [F, q + 1] per-feature boundaries, e.g. from `quantile_boundaries`.
    Call args:
      values: [B, F] float.
    Returns:
      [B, 3F]: x~ of the F features, then x~^2, then sqrt(x~).

    Example:
      layer = EmpiricalCDF(quantile_boundaries(train_values, 100))
      normalised = layer(tf.constant(batch_values, tf.float32))
    """

    def __init__(self, boundaries: np.ndarray | Sequence[Sequence[float]], **kwargs: Any
                 ) -> None:
        super().__init__(**kwargs)
        self.boundaries = [[float(b) for b in row] for row in boundaries]
        for row in self.boundaries:
            if any(b > a for b, a in zip(row, row[1:])) or len(row) < 2:
                raise ValueError("each boundaries row needs >= 2 non-decreasing values")
        self._b = tf.constant(self.boundaries, tf.float32)  # [F, q + 1]
        self._q = float(len(self.boundaries[0]) - 1) if self.boundaries else 1.0

    def call(self, values: tf.Tensor) -> tf.Tensor:
        x = tf.cast(values, tf.float32)
        x = tf.transpose(tf.where(tf.math.is_nan(x), self._b[None, :, 0] - 1.0, x))  # [F, B]
        below = tf.searchsorted(self._b, x, side="left")   # boundaries < x
        upto = tf.searchsorted(self._b, x, side="right")   # boundaries <= x
        n = tf.shape(self._b)[1]
        lo = tf.gather(self._b, tf.clip_by_value(below - 1, 0, n - 1), batch_dims=1)
        hi = tf.gather(self._b, tf.clip_by_value(below, 0, n - 1), batch_dims=1)
        frac = tf.math.divide_no_nan(x - lo, hi - lo)
        between = (tf.cast(below, tf.float32) - 1.0 + frac) / self._q
        on_boundary = (tf.cast(below + upto, tf.float32) - 1.0) / (2.0 * self._q)
        cdf = tf.where(upto > below, on_boundary, between)
        cdf = tf.where(below == 0, tf.where(upto > 0, cdf, 0.0), cdf)
        cdf = tf.where(below == n, 1.0, cdf)
        cdf = tf.clip_by_value(tf.transpose(cdf), 0.0, 1.0)  # [B, F]
        return tf.concat([cdf, tf.square(cdf), tf.sqrt(cdf)], axis=-1)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "boundaries": self.boundaries}
