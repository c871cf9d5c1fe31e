"""watch_history: the user's last watches before the cut, newest first (Covington et al. 2016).

  example column  watch_history  Ragged video ids: the last `examples.max_history` watches
                                 before the cut (`tfrec.features.history`, the one history rule)
  input           watch_history  [B, max_history] string, "" padding; watched ids (a request may
                                 carry the user's whole list; all of it is excluded)
  encoding        the video embedding (the softmax table when shared), then the encoder
                  `tower.history_encoder` names: masked mean (`watch_history_mean`) or causal
                  self-attention over learned positions (`watch_history_attention`;
                  `tfrec.models.history_encoders`)
"""
from __future__ import annotations

import typing
from collections.abc import Mapping

import numpy as np

from tfrec.features.history import rows_before
from tfrec.features.ragged import Ragged
from tfrec.features.tower import (Column, Cuts, Encoding, RequestSpec, ServingUser, Tensor,
                                  TowerContext, TowerFeature, TowerInput, UserEvents)
from tfrec.features.tower_registry import register_tower_feature
from tfrec.keras_check import require_keras2

if typing.TYPE_CHECKING:
    from tfrec.config import ExampleConfig, UserTowerConfig


@register_tower_feature("watch_history")
class WatchHistory(TowerFeature):
    """The watched videos before the cut, most recent first, encoded in embedding space (by
    default averaged)."""

    order = 10
    INPUTS = (TowerInput("watch_history", "string", width="max_history", watched=True),)
    CODES = {"watch_history": "video_id"}

    def example_columns(self, events: UserEvents, cuts: Cuts,
                        config: ExampleConfig) -> dict[str, Column]:
        hist_idx, hist_len = rows_before(cuts.positions, config.max_history)
        return {"watch_history": Ragged(events.watches["video_id"][hist_idx], hist_len)}

    def encode(self, inputs: Mapping[str, Tensor], tower: UserTowerConfig,
               context: TowerContext) -> Encoding:
        from tfrec.models.history_encoders import encode_history
        tf = require_keras2()
        rows = context.video_lookup(inputs["watch_history"])
        return Encoding([encode_history(context.video_embedding(rows), tf.not_equal(rows, 0),
                                        tower, seed=context.seed)])

    def request_value(self, tower_input: TowerInput, spec: RequestSpec,
                      user: ServingUser) -> np.ndarray:
        """The user's watches newest first: all of them (at most the export's limit) when the
        input is declared of any width, else the first W, "" padded."""
        mine = user.watches["video_id"].to_numpy()[::-1]
        limit = user.max_request_history or len(mine)
        width = spec["shape"][1] or max(1, min(len(mine), limit))
        row = list(mine[:width]) + [""] * max(0, width - len(mine))
        return np.array([row], dtype=object)
