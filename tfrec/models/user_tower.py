"""The paper's user tower (Covington et al. 2016, Figure 3) as a functional Keras model.

Inputs (named, as the tf.data pipeline and the serving signature provide them) and their
encodings are the configured tower features' (`tfrec.features.tower`, one module each), e.g.:
  watch_history  [B, H] string video ids, "" padding -> embedding, then masked average or
                 causal self-attention (`tower.history_encoder`)
  search_tokens  [B, S] string tokens, "" padding   -> hashed embedding, masked average
  <demographic>  [B] string (e.g. age, gender)       -> StringLookup (OOV-safe) embedding
  example_age    [B] float32 seconds (0 at serving)  -> [age, age^2] scaled
Concatenated (in the features' order) -> ReLU tower (e.g. 1024-512-256) -> u [B, d], then any
feature's output shift (example_age under `output_shift`).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from tfrec.config import UserTowerConfig
from tfrec.features.tower import Tensor, TowerContext, TowerInput, tower_features
from tfrec.features.tower_registry import tower_feature_names
from tfrec.models.layers import relu_tower
from tfrec.tf_keras2 import tf

__all__ = ["UserTowerConfig", "build_user_tower", "keras_input"]  # UserTowerConfig re-exported


def keras_input(spec: TowerInput, config: UserTowerConfig) -> Tensor:
    """The named Keras Input of a tower input ([B] or [B, width from `config`])."""
    return tf.keras.Input(spec.shape(config), dtype=spec.dtype, name=spec.name)


def build_user_tower(config: UserTowerConfig, video_lookup: Any, video_embedding: Any,
                     demographic_vocabularies: Mapping[str, Sequence[str]],
                     max_example_age_seconds: float, seed: int | None = 0) -> Any:
    """The user tower as a functional model with named inputs.

    Args:
      config: UserTowerConfig.
      video_lookup: StringLookup over the video ids (mask "" -> 0, OOV -> 1), shared with the
        softmax side so both index the same rows.
      video_embedding: Embedding layer for watched videos (the softmax table when shared).
      demographic_vocabularies: {column: [values seen in training]}.
      max_example_age_seconds: scale of the example-age feature.
      seed: seeds the dropout masks (a function of seed and training step: resumable).
    Returns:
      tf.keras.Model mapping the named inputs to u [B, hidden_units[-1]].
    """
    choices = tower_feature_names()
    unknown = set(config.features) - set(choices)
    if unknown:
        raise ValueError(f"unknown user features {sorted(unknown)}; choose from {choices}")
    reg = tf.keras.regularizers.l2(config.l2) if config.l2 else None
    context = TowerContext(video_lookup, video_embedding, demographic_vocabularies,
                           max_example_age_seconds, reg, seed=seed or 0)
    # Layers are created feature by feature in the features' order: initial weights depend on it.
    inputs: dict[str, Tensor] = {}
    parts: list[Tensor] = []
    shifts: list[Callable[[Tensor], Tensor]] = []
    for feature in tower_features(config.features):
        own = {spec.name: keras_input(spec, config) for spec in feature.inputs(config)}
        taken = sorted(set(own) & set(inputs))
        if taken:
            raise ValueError(f"tower feature {feature.name!r} declares the input(s) {taken}, "
                             "which an earlier feature of the tower has")
        inputs.update(own)
        encoding = feature.encode(own, config, context)
        parts.extend(encoding.parts)
        if encoding.output_shift is not None:
            shifts.append(encoding.output_shift)
    if not parts:
        raise ValueError(f"the user tower needs at least one feature in its first layer, got "
                         f"{list(config.features)} (a feature that only shifts u, as example_age "
                         "does under example_age_path output_shift, is not one)")
    x = parts[0] if len(parts) == 1 else tf.keras.layers.Concatenate(name="user_features")(parts)
    x = relu_tower(x, config.hidden_units, reg, config.dropout, seed=seed or 0)
    for shift in shifts:
        x = shift(x)
    return tf.keras.Model(inputs, x, name="user_tower")
