"""Guards for the TensorFlow/Keras combination TFRS needs."""
from typing import Any


def require_keras2() -> Any:
    """Return `tf` after checking that `tf.keras` is Keras 2 (tf-keras), as TFRS 0.7.7 requires.

    Raises:
      RuntimeError: if TensorFlow was imported before `tfrec` (so `TF_USE_LEGACY_KERAS` was not
        seen) or the environment asks for Keras 3.
    """
    import tensorflow as tf

    module = tf.keras.Model.__module__
    if not module.startswith("tf_keras"):
        raise RuntimeError(
            "tfrec needs Keras 2 (tf-keras) for TensorFlow Recommenders, but tf.keras is "
            f"{module.split('.')[0]}. Set TF_USE_LEGACY_KERAS=1 before TensorFlow is first "
            "imported (import tfrec before tensorflow), and install tf-keras."
        )
    return tf
