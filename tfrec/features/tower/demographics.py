"""demographics: the user's columns of the users table (e.g. age, gender, occupation).

  example columns  every column of the users table, joined by user (the tower reads
                   `candidate_generation.tower.demographic_columns` of them)
  inputs           <column> [B] string, one per configured demographic column
  encoding         StringLookup over the training values (OOV-safe; `<column>_lookup`),
                   Embedding of demographic_dim (`<column>_embedding`)
"""
from __future__ import annotations

import typing
from collections.abc import Mapping

import numpy as np
import pandas as pd

from tfrec.features.tower import (Encoding, RequestSpec, ServingUser, Tensor, TowerContext,
                                  TowerFeature, TowerInput)
from tfrec.features.tower_registry import register_tower_feature
from tfrec.keras_check import require_keras2

if typing.TYPE_CHECKING:
    from tfrec.config import UserTowerConfig


@register_tower_feature("demographics")
class Demographics(TowerFeature):
    """One embedding per configured users-table column."""

    order = 30

    def inputs(self, tower: UserTowerConfig) -> tuple[TowerInput, ...]:
        return tuple(TowerInput(column, "string") for column in tower.demographic_columns)

    def user_columns(self, users: pd.DataFrame, user_ids: np.ndarray) -> dict[str, np.ndarray]:
        rows = users.index.get_indexer(user_ids)
        return {column: users[column].to_numpy(dtype=object)[rows] for column in users.columns}

    def encode(self, inputs: Mapping[str, Tensor], tower: UserTowerConfig,
               context: TowerContext) -> Encoding:
        tf = require_keras2()
        vocabularies = context.demographic_vocabularies
        parts = []
        for column in tower.demographic_columns:
            if column not in vocabularies:
                raise ValueError(f"demographic column {column!r} is not in the users table "
                                 f"(have {sorted(vocabularies)})")
            lookup = tf.keras.layers.StringLookup(
                vocabulary=sorted(set(vocabularies[column])), num_oov_indices=1,
                name=f"{column}_lookup")
            parts.append(tf.keras.layers.Embedding(lookup.vocabulary_size(),
                                                   tower.demographic_dim,
                                                   embeddings_regularizer=context.regularizer,
                                                   name=f"{column}_embedding")(
                lookup(inputs[column])))
        return Encoding(parts)

    def request(self, specs: Mapping[str, RequestSpec],
                user: ServingUser) -> dict[str, np.ndarray]:
        """The user's value of every [B] string input named as a users-table column."""
        return {name: np.array([str(user.profile[name])], dtype=object)
                for name, spec in specs.items()
                if name in user.profile.index and spec["dtype"] == "string"
                and len(spec["shape"]) == 1}
