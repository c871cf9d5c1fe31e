"""Small Keras layers of the user tower, each serialisable (get_config)."""
from tfrec.keras_check import require_keras2

tf = require_keras2()


class MaskedMean(tf.keras.layers.Layer):
    """Average of the embeddings whose mask is True; zeros for an all-padding row.

    Call args:
      embeddings: [B, L, d].
      mask: [B, L] bool.
    Returns:
      [B, d].
    """

    def call(self, embeddings, mask):
        weights = tf.cast(mask, embeddings.dtype)[..., None]  # [B, L, 1]
        total = tf.reduce_sum(embeddings * weights, axis=1)
        count = tf.reduce_sum(weights, axis=1)
        return tf.math.divide_no_nan(total, count)


class ExampleAgeFeatures(tf.keras.layers.Layer):
    """Example age (seconds) -> [age / scale, (age / scale)^2], as the paper feeds it.

    Args:
      scale_seconds: the training window's largest example age, so training ages map to [0, 1].
        At serving the age is 0, which asks the model for the end of the training window.
    Call args:
      example_age: [B] float seconds.
    Returns:
      [B, 2].
    """

    def __init__(self, scale_seconds, **kwargs):
        super().__init__(**kwargs)
        self.scale_seconds = float(scale_seconds)

    def call(self, example_age):
        x = tf.cast(example_age, tf.float32) / max(self.scale_seconds, 1.0)
        return tf.stack([x, tf.square(x)], axis=-1)

    def get_config(self):
        return {**super().get_config(), "scale_seconds": self.scale_seconds}
