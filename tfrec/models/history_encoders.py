"""Watch-history encoders of the user tower: the watched videos' embeddings -> one vector.

`tower.history_encoder` picks one:
  mean       the paper's masked average (order withheld on purpose: Covington et al. 2016,
             "label and context selection"); `tfrec.models.layers.MaskedMean`.
  attention  learned positions (0 = the newest watch) through causal self-attention blocks; the
             newest position's output, which attends to every watch of the history, is the
             history's vector (as in SASRec, Kang and McAuley 2018). Positions only, no time
             gaps, so the tower's inputs, and the servables' signatures, are the mean encoder's.

Both see only the history the example carries (the watches before its label, newest first,
"" padded at the end), and padding never reaches a real position's output.
"""
from __future__ import annotations

import typing
from typing import Any

from tfrec.models.layers import MaskedMean, ResumableDropout
from tfrec.tf_keras2 import tf

if typing.TYPE_CHECKING:
    from tfrec.config import UserTowerConfig

HISTORY_ENCODERS = ("mean", "attention")


class CausalSelfAttentionEncoder(tf.keras.layers.Layer):
    """Learned positions + pre-norm causal self-attention blocks over a newest-first history.

    Position i (0 = the newest watch) attends to itself and to the older real watches j >= i,
    never to padding; each block is x + Attention(LN(x)), then x + FFN(LN(x)) (ReLU, width d),
    with resumable dropout (`ResumableDropout`) after each; padded positions are zeroed after
    every block. The output is LN(x) at position 0; an all-padding history gives zeros, as the
    mean encoder does.

    Args:
      max_length: L, the history width (the number of learned positions).
      blocks: number of attention blocks.
      heads: attention heads (key width d // heads).
      dropout: dropout rate in training (0: none).
      seed: seeds the dropout masks (a function of (seed, step): resumable).
    Call args:
      embeddings: [B, L, d] the watched videos' embeddings, newest first.
      mask: [B, L] bool, True where a real watch is.
    Returns:
      [B, d].
    """

    def __init__(self, max_length: int, blocks: int = 1, heads: int = 2, dropout: float = 0.0,
                 seed: int = 0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.max_length, self.blocks, self.heads = int(max_length), int(blocks), int(heads)
        self.dropout, self.seed = float(dropout), int(seed)

    def build(self, input_shape: tf.TensorShape) -> None:
        d = int(input_shape[-1])
        if d % self.heads:
            raise ValueError(f"the history embedding width {d} must be a multiple of "
                             f"attention_heads ({self.heads})")
        # The scale of the video embeddings' initialiser (Keras: uniform(-0.05, 0.05)).
        self.positions = self.add_weight(
            name="positions", shape=(self.max_length, d),
            initializer=tf.keras.initializers.RandomUniform(-0.05, 0.05))
        self.layer_stack = []
        for b in range(self.blocks):
            self.layer_stack.append({
                "norm_attention": tf.keras.layers.LayerNormalization(name=f"norm_attention_{b}"),
                "attention": tf.keras.layers.MultiHeadAttention(self.heads, d // self.heads,
                                                                name=f"attention_{b}"),
                "norm_ffn": tf.keras.layers.LayerNormalization(name=f"norm_ffn_{b}"),
                "ffn_in": tf.keras.layers.Dense(d, activation="relu", name=f"ffn_in_{b}"),
                "ffn_out": tf.keras.layers.Dense(d, name=f"ffn_out_{b}"),
                "drop_attention": ResumableDropout(self.dropout, seed=1000 * self.seed + 2 * b,
                                                   name=f"drop_attention_{b}"),
                "drop_ffn": ResumableDropout(self.dropout, seed=1000 * self.seed + 2 * b + 1,
                                             name=f"drop_ffn_{b}"),
            })
        self.final_norm = tf.keras.layers.LayerNormalization(name="norm_output")
        super().build(input_shape)

    def _drop(self, layer: Any, x: tf.Tensor, training: Any) -> tf.Tensor:
        return layer(x, training=training) if self.dropout else x

    def call(self, embeddings: tf.Tensor, mask: tf.Tensor, training: Any = None) -> tf.Tensor:
        length = tf.shape(embeddings)[1]
        real = tf.cast(mask, embeddings.dtype)[..., None]  # [B, L, 1]
        x = (embeddings + self.positions[None, :length]) * real
        # allowed[b, i, j]: j is i itself, or a real watch at or before i's (j >= i: newest
        # first). The diagonal keeps a padded query from a row with nothing to attend to.
        older = tf.range(length)[None, :] >= tf.range(length)[:, None]  # [L, L]
        allowed = tf.logical_or(tf.logical_and(older[None], mask[:, None, :]),
                                tf.eye(length, dtype=tf.bool)[None])
        for b, block in enumerate(self.layer_stack):
            h = block["norm_attention"](x)
            if b == self.blocks - 1:
                # Only the newest position's output is used: the last block computes its row
                # alone (the same numbers as the full block's first row, ~3x less work).
                x, real, allowed = x[:, :1], real[:, :1], allowed[:, :1]
            a = block["attention"](h[:, :tf.shape(x)[1]], h, attention_mask=allowed,
                                   training=training)
            x = (x + self._drop(block["drop_attention"], a, training)) * real
            h = block["ffn_out"](block["ffn_in"](block["norm_ffn"](x)))
            x = (x + self._drop(block["drop_ffn"], h, training)) * real
        return self.final_norm(x[:, 0]) * real[:, 0]

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "max_length": self.max_length, "blocks": self.blocks,
                "heads": self.heads, "dropout": self.dropout, "seed": self.seed}


def encode_history(embeddings: tf.Tensor, mask: tf.Tensor, tower: UserTowerConfig,
                   seed: int = 0) -> tf.Tensor:
    """The history's vector [B, d] from its embeddings [B, L, d] and mask [B, L] by the
    encoder `tower.history_encoder` names (layer `watch_history_mean` or
    `watch_history_attention`)."""
    if tower.history_encoder == "mean":
        return MaskedMean(name="watch_history_mean")(embeddings, mask)
    if tower.history_encoder == "attention":
        return CausalSelfAttentionEncoder(
            tower.max_history, tower.attention_blocks, tower.attention_heads,
            tower.attention_dropout, seed=seed, name="watch_history_attention")(embeddings, mask)
    raise ValueError(f"unknown history_encoder {tower.history_encoder!r}; choose from "
                     f"{HISTORY_ENCODERS}")
