"""Candidate generation as extreme multiclass classification (Covington et al. 2016, sec. 3).

`CandidateGenerationModel` is a `tfrs.Model`: the user tower maps features to u [B, d]; the softmax
weights over all videos are the output video embeddings v_j [V, d] (plus an optional bias b_j);
`compute_loss` hands u and the label rows to a `CandidateSoftmaxTask`, a `tfrs.tasks.Retrieval`-style
task whose loss is the full softmax or one of its logQ-corrected sampled estimates
(`tfrec.losses.candidate_sampling`). Serving scores u . v_j + b_j over the corpus.

Embedding rows: one StringLookup (mask "" -> row 0, unknown id -> row 1, videos -> rows 2..V+1)
indexes both the watch-history input embeddings and the output table, so raw string ids go in and
an unseen id never crashes.
"""
import numpy as np
import tensorflow_recommenders as tfrs

from tfrec.config import SoftmaxConfig, UserTowerConfig
from tfrec.keras_check import require_keras2
from tfrec.losses.candidate_sampling import (full_softmax_loss, pool_softmax_loss,
                                             sampled_softmax_loss)
from tfrec.losses.samplers import (CandidateSampler, StreamingFrequencyEstimator,
                                   uniform_probabilities, unigram_probabilities)
from tfrec.models.user_tower import build_user_tower

tf = require_keras2()

LOSSES = ("full", "sampled", "in_batch", "mixed")
FIRST_VIDEO_ROW = 2  # rows 0 and 1 are padding and OOV


class CandidateSoftmaxTask(tf.keras.layers.Layer):
    """The retrieval task: mean softmax loss of u against the label rows (a TFRS-style task).

    Args:
      config: SoftmaxConfig.
      label_probabilities: [V] P(j), the training label distribution over rows (in-batch logQ).
      proposal_probabilities: [V] Q(j), the negative proposal over rows (sampled, mixed).
      seed: sampler seed.
    """

    def __init__(self, config, label_probabilities, proposal_probabilities, seed=None, **kwargs):
        super().__init__(**kwargs)
        if config.loss not in LOSSES:
            raise ValueError(f"unknown loss {config.loss!r}; choose from {LOSSES}")
        self.config = config
        self.label_probabilities = tf.constant(label_probabilities, tf.float32)
        self.sampler = CandidateSampler(proposal_probabilities, seed=seed)
        if config.label_probability not in ("counts", "streaming"):
            raise ValueError(f"unknown label_probability {config.label_probability!r}; use "
                             "counts or streaming")
        self.frequency = StreamingFrequencyEstimator(
            len(label_probabilities), config.streaming_alpha) \
            if config.label_probability == "streaming" else None

    def _in_batch_expected(self, rows, batch):
        """Expected count of each row among the batch's B labels."""
        if self.frequency is not None:
            return self.frequency.expected_count(rows)
        return tf.cast(batch, tf.float32) * tf.gather(self.label_probabilities, rows)

    def _expected(self, counts):
        return counts if self.config.logq_correction else tf.ones_like(counts)

    def call(self, queries, label_rows, table, bias=None, sample_weight=None, training=False):
        """queries [B, d], label_rows [B] int64, table [V, d], bias [V] or None -> scalar loss."""
        cfg = self.config
        if self.frequency is not None and training:
            self.frequency.update(label_rows)
        batch = tf.shape(queries)[0]
        gather_bias = (lambda rows: tf.gather(bias, rows)) if bias is not None else \
            (lambda rows: None)
        if cfg.loss == "full":
            per_example = full_softmax_loss(queries, table, label_rows, bias)
        elif cfg.loss == "sampled":
            neg = self.sampler.sample(cfg.num_negatives)
            n = tf.cast(cfg.num_negatives, tf.float32)
            per_example = sampled_softmax_loss(
                queries, tf.gather(table, label_rows), label_rows,
                self._expected(n * self.sampler.probability(label_rows)),
                tf.gather(table, neg), neg, self._expected(n * self.sampler.probability(neg)),
                gather_bias(label_rows), gather_bias(neg))
        else:
            pool = label_rows
            expected = self._in_batch_expected(pool, batch)
            if cfg.loss == "mixed":
                neg = self.sampler.sample(cfg.num_negatives)
                pool = tf.concat([label_rows, neg], axis=0)
                expected = self._in_batch_expected(pool, batch) + \
                    tf.cast(cfg.num_negatives, tf.float32) * self.sampler.probability(pool)
            per_example = pool_softmax_loss(queries, tf.gather(table, pool), pool,
                                            self._expected(expected), label_rows,
                                            gather_bias(pool))
        if sample_weight is None:
            return tf.reduce_mean(per_example)
        weight = tf.cast(sample_weight, per_example.dtype)
        return tf.math.divide_no_nan(tf.reduce_sum(per_example * weight), tf.reduce_sum(weight))


class CandidateGenerationModel(tfrs.Model):
    """User tower + softmax over the video corpus.

    Args:
      video_ids: [V] the corpus (unique string ids).
      label_counts: [V] training label count of each video (for P and the unigram Q).
      demographic_vocabularies: {column: training values}.
      max_example_age_seconds: scale of the example-age feature.
      tower: UserTowerConfig; softmax: SoftmaxConfig; seed: sampler seed.
    """

    def __init__(self, video_ids, label_counts, demographic_vocabularies,
                 max_example_age_seconds, tower=UserTowerConfig(), softmax=SoftmaxConfig(),
                 seed=None):
        super().__init__()
        video_ids = np.asarray(video_ids).astype(str)
        if len(set(video_ids)) != len(video_ids):
            raise ValueError("video_ids must be unique")
        self.video_ids = video_ids
        self.tower_config, self.softmax_config = tower, softmax
        self.video_lookup = tf.keras.layers.StringLookup(
            vocabulary=list(video_ids), mask_token="", num_oov_indices=1, name="video_lookup")
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

    def _bias(self):
        return None if self.video_bias is None else self.video_bias.embeddings[:, 0]

    def _tower_inputs(self, features):
        return {name: features[name] for name in self.user_tower.input}

    def compute_loss(self, features, training=False):
        queries = self.user_tower(self._tower_inputs(features), training=training)
        label_rows = self.video_lookup(features["video_id"])
        return self.task(queries, label_rows, self.video_embedding.embeddings, self._bias(),
                         training=training)

    def call(self, features, training=False):
        return self.user_tower(self._tower_inputs(features), training=training)

    def candidate_table(self):
        """([V] video ids, [V, d'] candidate vectors) for dot-product serving: the bias, if any,
        becomes one extra column (with a 1 appended to u by `query_vectors`)."""
        rows = self.video_embedding.embeddings[FIRST_VIDEO_ROW:]
        if self.video_bias is not None:
            rows = tf.concat([rows, self.video_bias.embeddings[FIRST_VIDEO_ROW:]], axis=1)
        return self.video_ids, rows.numpy()

    def query_vectors(self, features, batch_size=1024):
        """[Q, d'] user vectors for a dict of numpy feature arrays (the serving form of u)."""
        u = self.user_tower.predict(self._tower_inputs(features), batch_size=batch_size,
                                    verbose=0)
        if self.video_bias is not None:
            u = np.concatenate([u, np.ones((len(u), 1), u.dtype)], axis=1)
        return u
