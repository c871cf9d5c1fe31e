"""TensorFlow, checked to run Keras 2 (tf-keras) as TFRS 0.7.7 requires.

`from tfrec.tf_keras2 import tf`: a module that builds Keras layers or models imports `tf` from
here rather than `tensorflow` itself, so the check runs once, before any layer exists, and the
error says what to do. Modules that only sometimes need TensorFlow call
`tfrec.keras_check.require_keras2()` inside a function instead, so importing them stays cheap.
"""
import tensorflow as tf

from tfrec.keras_check import require_keras2

require_keras2()

__all__ = ["tf"]
