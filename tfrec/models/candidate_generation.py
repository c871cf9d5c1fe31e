"""Candidate generation as extreme multiclass classification (Covington et al. 2016, sec. 3).

`CandidateGenerationModel` is a `tfrs.Model`: the user tower maps features to u [B, d]; the softmax
weights over all videos are the output video embeddings v_j [V, d] (plus an optional bias b_j);
`compute_loss` hands u and the label rows to a `CandidateSoftmaxTask`, a
`tfrs.tasks.Retrieval`-style task whose loss is the full softmax or one of its logQ-corrected
sampled estimates (`tfrec.losses.softmax`, one module per loss). Serving scores u . v_j + b_j
over the corpus.

Embedding rows: one StringLookup (mask "" -> row 0, unknown id -> row 1, videos -> rows 2..V+1)
indexes both the watch-history input embeddings and the output table, so raw string ids go in and
an unseen id never crashes.
"""

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import tensorflow_recommenders as tfrs

from tfrec.config import SoftmaxConfig, UserTowerConfig
from tfrec.tf_keras2 import tf
from tfrec.losses.registry import LABEL_PROBABILITIES, LOSSES
from tfrec.losses.samplers import CandidateSampler, uniform_probabilities, unigram_probabilities
from tfrec.losses.softmax import SamplingPieces
from tfrec.models.user_tower import build_user_tower

FIRST_VIDEO_ROW = 2  # rows 0 and 1 are padding and OOV


class CandidateSoftmaxTask(tf.keras.layers.Layer):
    """The retrieval task: mean softmax loss of u against the label rows (a TFRS-style task).

    The loss is the class registered as `config.loss` (`tfrec.losses.registry`); the task owns
    what the losses share: the negative sampler (`sampler`, whose generator state checkpoints
    with the model) and the label-probability source (`frequency`, registered as
    `config.label_probability`; the streaming one's estimates are layer weights).

    Args:
      config: SoftmaxConfig.
      label_probabilities: [V] P(j), the training label distribution over rows (in-batch logQ).
      proposal_probabilities: [V] Q(j), the negative proposal over rows (sampled, mixed).
      seed: sampler seed.
    """

    def __init__(self, config: SoftmaxConfig, label_probabilities: npt.ArrayLike,
                 proposal_probabilities: npt.ArrayLike, seed: int | None = None, **kwargs: Any
                 ) -> None:
        super().__init__(**kwargs)
        loss_class = LOSSES.get(config.loss)
        source_class = LABEL_PROBABILITIES.get(config.label_probability)
        self.config = config
        self.seed = seed
        self._label_probabilities = np.asarray(label_probabilities, dtype=np.float64)
        self._proposal_probabilities = np.asarray(proposal_probabilities, dtype=np.float64)
        self.sampler = CandidateSampler(self._proposal_probabilities, seed=seed)
        self.frequency = source_class.from_softmax_config(config, self._label_probabilities)
        self.softmax_loss = loss_class(SamplingPieces(
            self.sampler, self.frequency, config.num_negatives, config.logq_correction))

    def call(self, queries: tf.Tensor, label_rows: tf.Tensor, table: tf.Tensor,
             bias: tf.Tensor | None = None, sample_weight: tf.Tensor | None = None,
             training: bool = False) -> tf.Tensor:
        """queries [B, d], label_rows [B] int64, table [V, d], bias [V] or None,
        sample_weight [B] or None -> scalar (weighted) mean loss."""
        if training:
            self.frequency.update(label_rows)
        per_example = self.softmax_loss.per_example_loss(queries, label_rows, table, bias)
        if sample_weight is None:
            return tf.reduce_mean(per_example)
        weight = tf.cast(sample_weight, per_example.dtype)
        return tf.math.divide_no_nan(tf.reduce_sum(per_example * weight), tf.reduce_sum(weight))

    def get_config(self) -> dict[str, Any]:
        """The constructor's arguments (the [V] distributions as lists). A task made by
        `from_config` starts from the seed and a fresh label-probability state."""
        return {**super().get_config(), "config": self.config.model_dump(mode="json"),
                "label_probabilities": self._label_probabilities.tolist(),
                "proposal_probabilities": self._proposal_probabilities.tolist(),
                "seed": self.seed}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "CandidateSoftmaxTask":
        config = dict(config)
        config["config"] = SoftmaxConfig.model_validate(config["config"])
        return cls(**config)


class CandidateGenerationModel(tfrs.Model):
    """User tower + softmax over the video corpus.

    Args:
      video_ids: [V] the corpus (unique string ids).
      label_counts: [V] training label count of each video (for P and the unigram Q).
      demographic_vocabularies: {column: training values}.
      max_example_age_seconds: scale of the example-age feature.
      tower: UserTowerConfig; softmax: SoftmaxConfig; seed: sampler seed.
    """

    def __init__(self, video_ids: npt.ArrayLike, label_counts: npt.ArrayLike,
                 demographic_vocabularies: Mapping[str, Sequence[str]],
                 max_example_age_seconds: float, tower: UserTowerConfig | None = None,
                 softmax: SoftmaxConfig | None = None, seed: int | None = None) -> None:
        super().__init__()
        tower = UserTowerConfig() if tower is None else tower
        softmax = SoftmaxConfig() if softmax is None else softmax
        ids = np.asarray(video_ids).astype(str)
        if len(set(ids)) != len(ids):
            raise ValueError("video_ids must be unique")
        self.video_ids = ids
        self.tower_config, self.softmax_config = tower, softmax
        self.video_lookup = tf.keras.layers.StringLookup(
            vocabulary=list(ids), mask_token="", num_oov_indices=1, name="video_lookup")
        num_rows = self.video_lookup.vocabulary_size()  # V + 2
        out_dim = tower.hidden_units[-1] if tower.hidden_units else None
        self.video_embedding = tf.keras.layers.Embedding(num_rows, out_dim or tower.embedding_dim,
                                                         name="video_output_embedding")
        if softmax.share_embeddings:
            if out_dim not in (None, tower.embedding_dim):
                raise ValueError("share_embeddings needs hidden_units[-1] == embedding_dim")
            input_embedding = self.video_embedding
        else:
            input_embedding = tf.keras.layers.Embedding(
                num_rows, tower.embedding_dim, name="video_input_embedding",
                embeddings_regularizer=tf.keras.regularizers.l2(tower.l2) if tower.l2 else None)
        self.user_tower = build_user_tower(tower, self.video_lookup, input_embedding,
                                           demographic_vocabularies, max_example_age_seconds,
                                           seed=seed)
        self.video_embedding.build((None,))
        self.video_bias = tf.keras.layers.Embedding(num_rows, 1, embeddings_initializer="zeros",
                                                    name="video_bias") if softmax.use_bias else None
        if self.video_bias is not None:
            self.video_bias.build((None,))
        counts = np.zeros(num_rows)
        counts[FIRST_VIDEO_ROW:] = np.asarray(label_counts, dtype=np.float64)
        label_p = unigram_probabilities(counts, 1.0)
        if softmax.proposal == "uniform":
            proposal = uniform_probabilities(num_rows, FIRST_VIDEO_ROW)
        elif softmax.proposal == "unigram":
            # Videos never seen as labels still get a little mass, so they are sometimes negatives.
            proposal = unigram_probabilities(np.where(counts > 0, counts, 0.5 * (
                np.arange(num_rows) >= FIRST_VIDEO_ROW)), softmax.proposal_alpha)
        else:
            raise ValueError(f"unknown proposal {softmax.proposal!r}; use uniform or unigram")
        self.task = CandidateSoftmaxTask(softmax, label_p, proposal, seed=seed)

    def _bias(self) -> tf.Tensor | None:
        return None if self.video_bias is None else self.video_bias.embeddings[:, 0]

    def _tower_inputs(self, features: Mapping[str, Any]) -> dict[str, Any]:
        return {name: features[name] for name in self.user_tower.input}

    def compute_loss(self, features: Mapping[str, tf.Tensor], training: bool = False) -> tf.Tensor:
        queries = self.user_tower(self._tower_inputs(features), training=training)
        label_rows = self.video_lookup(features["video_id"])
        return self.task(queries, label_rows, self.video_embedding.embeddings, self._bias(),
                         training=training)

    def call(self, features: Mapping[str, tf.Tensor], training: bool = False) -> tf.Tensor:
        return self.user_tower(self._tower_inputs(features), training=training)

    def candidate_table(self) -> tuple[np.ndarray, np.ndarray]:
        """([V] video ids, [V, d'] candidate vectors) for dot-product serving: the bias, if any,
        becomes one extra column (with a 1 appended to u by `query_vectors`)."""
        rows = self.video_embedding.embeddings[FIRST_VIDEO_ROW:]
        if self.video_bias is not None:
            rows = tf.concat([rows, self.video_bias.embeddings[FIRST_VIDEO_ROW:]], axis=1)
        return self.video_ids, rows.numpy()

    def query_vectors(self, features: Mapping[str, np.ndarray], batch_size: int = 1024
                      ) -> np.ndarray:
        """[Q, d'] user vectors for a dict of numpy feature arrays (the serving form of u)."""
        u = self.user_tower.predict(self._tower_inputs(features), batch_size=batch_size,
                                    verbose=0)
        if self.video_bias is not None:
            u = np.concatenate([u, np.ones((len(u), 1), u.dtype)], axis=1)
        return u
