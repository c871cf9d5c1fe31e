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

    def __init__(self, rate, seed=0, **kwargs):
        super().__init__(**kwargs)
        self.rate = float(rate)
        self.seed = int(seed)

    def build(self, input_shape):
        self.step = self.add_weight(name="step", shape=(), dtype=tf.int64, initializer="zeros",
                                    trainable=False)
        super().build(input_shape)

    def call(self, inputs, training=None):
        if training is None:
            training = tf.keras.backend.learning_phase()
        if isinstance(training, (bool, int)) and not training:
            return inputs

        def dropped():
            step = self.step.assign_add(1)
            seed = tf.stack([tf.constant(self.seed, tf.int64), step])
            return tf.nn.experimental.stateless_dropout(inputs, self.rate, seed=seed)

        if isinstance(training, (bool, int)):
            return dropped()
        return tf.cond(tf.cast(training, tf.bool), dropped, lambda: tf.identity(inputs))

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}
