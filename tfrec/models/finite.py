"""Guards that keep a diverged model from being trained on, selected or exported.

A NaN or infinite loss (a learning rate far too high, a bad feature value) leaves weights that
score every video NaN: evaluation then still prints plausible-looking figures for ties, and an
export would serve them. Training stops at the first non-finite batch loss, and every servable is
checked for non-finite variables before it is written.
"""
from collections.abc import Iterable
from typing import Any

import numpy as np

from tfrec.errors import TfrecError
from tfrec.tf_keras2 import tf


class NonFiniteError(TfrecError, ValueError):
    """Training or a model produced a NaN or infinite number (the message says where)."""


class StopOnNonFiniteLoss(tf.keras.callbacks.Callback):
    """Raises `NonFiniteError` at the first training batch whose loss is NaN or infinite.

    Keras's own `TerminateOnNaN` only sets `stop_training`, so `fit` would return normally and
    the run would go on to evaluate and export the broken weights; this raises instead.

    Args:
      stage: what is being trained, for the message (e.g. "candidate_generation").
      epoch: the epoch `fit` runs (the project fits one epoch per call).
      hint: what to change, appended to the message.
    """

    def __init__(self, stage: str, epoch: int, hint: str = "") -> None:
        super().__init__()
        self.stage, self.epoch, self.hint = stage, int(epoch), hint

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        loss = (logs or {}).get("loss")
        if loss is not None and not np.isfinite(float(loss)):
            raise NonFiniteError(
                f"{self.stage}: training loss is {float(loss)} at epoch {self.epoch}, step "
                f"{batch + 1}; training stopped and nothing was exported{self.hint}")

    def get_config(self) -> dict[str, Any]:
        return {"stage": self.stage, "epoch": self.epoch, "hint": self.hint}


def check_finite_variables(variables: Iterable[tf.Variable], what: str) -> None:
    """NonFiniteError naming the first float variable that holds a NaN or infinity.

    Args:
      variables: tf.Variables (e.g. a tf.Module's `.variables`).
      what: the model or servable, for the message.
    """
    for variable in variables:
        if not variable.dtype.is_floating:
            continue
        values = variable.numpy()
        if not np.isfinite(values).all():
            bad = int(np.size(values) - np.isfinite(values).sum())
            raise NonFiniteError(f"{what}: variable '{variable.name}' holds {bad} non-finite "
                                 "value(s); refusing to export a broken model")
