"""example_age: the example's age, end of the training window - its time (0 at serving).

  example column  example_age  [m] int64 s: made by the example builder with the label and its
                               timestamp, as every model reads it (its scale is the largest
                               training age), so this feature makes no column of its own
  input           example_age  [B] float32 s; clamped at serving to [0, the largest training age]
  encoding        [x, x^2] scaled (`example_age_features`, `tfrec.models.layers`), either beside
                  the other features (`first_layer`) or as a shift of u after the ReLU tower
                  (`output_shift`: `example_age_shift`, `user_vector`)
"""
from __future__ import annotations

import typing
from collections.abc import Mapping

import numpy as np

from tfrec.features.tower import (Encoding, RequestSpec, ServingUser, Tensor, TowerContext,
                                  TowerFeature, TowerInput)
from tfrec.features.tower_registry import register_tower_feature
from tfrec.keras_check import require_keras2

if typing.TYPE_CHECKING:
    from tfrec.config import UserTowerConfig


@register_tower_feature("example_age")
class ExampleAge(TowerFeature):
    """The paper's example age: lets the model learn time-dependent popularity."""

    order = 40
    INPUTS = (TowerInput("example_age", "float32"),)

    def encode(self, inputs: Mapping[str, Tensor], tower: UserTowerConfig,
               context: TowerContext) -> Encoding:
        from tfrec.models.layers import ExampleAgeFeatures
        tf = require_keras2()
        age = ExampleAgeFeatures(context.max_example_age_seconds, tower.example_age_scale,
                                 name="example_age_features")(inputs["example_age"])
        if tower.example_age_path == "first_layer":
            return Encoding([age])
        units = tower.hidden_units[-1]

        def shift(x: Tensor) -> Tensor:
            """output_shift: [x, x^2] -> a direction in u-space, 0 at serving."""
            moved = tf.keras.layers.Dense(units, use_bias=False, name="example_age_shift")(age)
            return tf.keras.layers.Add(name="user_vector")([x, moved])
        return Encoding([], output_shift=shift)

    def input_ranges(self, user_tower: Tensor) -> dict[str, tuple[float, float]]:
        """{"example_age": (0, the largest training example age)} when the tower takes it.

        Training ages lie in [0, max] (end of the training window - t) and the tower feeds
        [age / max, (age / max)^2]: outside that range the quadratic is extrapolated, and an age
        of -1e30 drives the ReLU tower to NaN or all-zero vectors. Negative ages are clamped to 0
        too: the paper allows "slightly negative" serving ages, but this tower never saw one in
        training, and 0 already asks for the end of the training window.
        """
        from tfrec.models.layers import ExampleAgeFeatures
        layers = [layer for layer in user_tower.layers if isinstance(layer, ExampleAgeFeatures)]
        if "example_age" not in user_tower.input or not layers:
            return {}
        return {"example_age": (0.0, max(layers[0].scale_seconds, 0.0))}

    def request_value(self, tower_input: TowerInput, spec: RequestSpec,
                      user: ServingUser) -> np.ndarray:
        return np.zeros(1, np.float32)  # serving asks for the end of the training window
