"""The ranker: weighted logistic regression for expected watch time (Covington et al. 2016, sec. 4).

`build_ranking_scorer` is a functional Keras model from raw named features to logits:
  video_id        [B] string    -> video embedding (rows: 0 padding "", 1 unknown, 2.. the corpus,
                                   the candidate generator's vocabulary)
  watch_history   [B, H] string -> masked mean of the same embedding table (shared, as the paper)
  user_language, video_language [B] string -> one shared language embedding, plus a 0/1 match
  <continuous>    [B] float32 each (seconds, counts; `CONTINUOUS_FEATURES`, cg_score)
                                -> EmpiricalCDF: x~, x~^2, sqrt(x~)
  <indicators>    [B] float32 0/1 each (never_watched_channel, never_watched_topic)
-> concatenated -> ReLU tower (hidden_units; none = logistic regression) -> logit [B] (the watch
head, weighted by watch time) and click_logit [B] (the optional unweighted click head).

`RankingModel` (a tfrs.Model) trains them with two `tfrs.tasks.Ranking` tasks: the weighted BCE
(`tfrec.losses.weighted_logistic`) on the watch head, and plain BCE on the click head. Its `call`
gives the serving outputs:
  logit               [B] scale * (the watch head's logit + log(r)) + shift
  expected_watch_time [B] exp(logit), seconds: the learned odds; E[T] / (1 - P) ≈ E[T] with the
                      paper's negatives (not_clicked), E[T] with negatives = all_impressions
  click_probability   [B] sigmoid(click_logit + log(r)) (click head only)
  expected_watch_time_corrected [B] exp(logit) * (1 - click_probability) (click head and the
                      paper's negatives only): removes the odds' 1 / (1 - P) bias
where r is the negative subsampling rate of training: keeping negatives with probability r
multiplies the paper's learned odds by 1 / r (see the loss module), and + log(r) undoes it (with
all_impressions the kept negatives weigh 1 / r instead). scale and shift are 1 and 0 until
`calibrate` fits them on validation (`tfrec.models.ranking_calibration`).
Metrics: click AUC, never weighted by watch time (docs/DESIGN_NOTES.md, "Sample weights and
metrics"): the click task gets no sample weights; without a click head it only measures the
watch logit's AUC (its loss unused).
"""
import math

import numpy as np
import tensorflow_recommenders as tfrs

from tfrec.config import RANKING_FEATURES as FEATURES
from tfrec.config import RankingConfig  # noqa: F401  (re-exported)
from tfrec.features.ranking_examples import CONTINUOUS_FEATURES, INDICATOR_FEATURES
from tfrec.tf_keras2 import tf
from tfrec.losses.weighted_logistic import (WatchTimeLoss, WeightedLogisticLoss,
                                            watch_time_weights)
from tfrec.models.layers import EmpiricalCDF, MaskedMean, quantile_boundaries, relu_tower


def continuous_inputs(config):
    """Names of the CDF-normalised inputs the config uses."""
    names = list(CONTINUOUS_FEATURES) if "continuous" in config.features else []
    return names + (["cg_score"] if "cg_score" in config.features else [])


def indicator_inputs(config):
    """Names of the 0/1 inputs fed as they are."""
    return list(INDICATOR_FEATURES) if "continuous" in config.features else []


def build_ranking_scorer(config, video_ids, languages, boundaries):
    """Functional model: named raw inputs -> {"logit": [B], "click_logit": [B]} (training space).

    Args:
      config: RankingConfig.
      video_ids: [V] corpus ids (unique strings).
      languages: language values seen in training ("" excluded).
      boundaries: [F, q + 1] CDF boundaries of `continuous_inputs(config)`, in that order.
    """
    unknown = set(config.features) - set(FEATURES)
    if unknown:
        raise ValueError(f"unknown ranking features {sorted(unknown)}; choose from {FEATURES}")
    reg = tf.keras.regularizers.l2(config.l2) if config.l2 else None
    inputs, parts = {}, []
    if {"video_id", "watch_history"} & set(config.features):
        lookup = tf.keras.layers.StringLookup(vocabulary=[str(v) for v in video_ids],
                                              mask_token="", num_oov_indices=1,
                                              name="video_lookup")
        embedding = tf.keras.layers.Embedding(lookup.vocabulary_size(), config.embedding_dim,
                                              embeddings_regularizer=reg, name="video_embedding")
    if "video_id" in config.features:
        inputs["video_id"] = tf.keras.Input((), dtype=tf.string, name="video_id")
        parts.append(embedding(lookup(inputs["video_id"])))
    if "watch_history" in config.features:
        inputs["watch_history"] = tf.keras.Input((config.max_history,), dtype=tf.string,
                                                 name="watch_history")
        rows = lookup(inputs["watch_history"])
        parts.append(MaskedMean(name="watch_history_mean")(embedding(rows), tf.not_equal(rows, 0)))
    if "language" in config.features:
        lang_lookup = tf.keras.layers.StringLookup(
            vocabulary=sorted(set(languages) - {""}) or ["?"], mask_token="", num_oov_indices=1,
            name="language_lookup")
        lang_embedding = tf.keras.layers.Embedding(lang_lookup.vocabulary_size(),
                                                   config.language_dim,
                                                   embeddings_regularizer=reg,
                                                   name="language_embedding")
        for side in ("user_language", "video_language"):
            inputs[side] = tf.keras.Input((), dtype=tf.string, name=side)
            parts.append(lang_embedding(lang_lookup(inputs[side])))
        same = tf.logical_and(tf.equal(inputs["user_language"], inputs["video_language"]),
                              tf.not_equal(inputs["user_language"], ""))
        parts.append(tf.cast(same, tf.float32)[:, None])
    names = continuous_inputs(config)
    if names:
        for name in names:
            inputs[name] = tf.keras.Input((), dtype=tf.float32, name=name)
        stacked = tf.stack([inputs[n] for n in names], axis=1)
        parts.append(EmpiricalCDF(np.asarray(boundaries).tolist(), name="cdf")(stacked))
    for name in indicator_inputs(config):
        inputs[name] = tf.keras.Input((), dtype=tf.float32, name=name)
        parts.append(inputs[name][:, None])
    if not parts:
        raise ValueError("the ranker needs at least one feature")
    x = parts[0] if len(parts) == 1 else tf.keras.layers.Concatenate(name="ranking_features")(parts)
    x = relu_tower(x, config.hidden_units, reg)
    logit = tf.keras.layers.Dense(1, name="watch_logit")(x)[:, 0]
    click_logit = tf.keras.layers.Dense(1, name="click_logit")(x)[:, 0]
    return tf.keras.Model(inputs, {"logit": logit, "click_logit": click_logit},
                          name="ranking_scorer")


class RankingModel(tfrs.Model):
    """Weighted LR ranker (module docstring). Features include `clicked` and `watch_time`.

    Args:
      scorer: from `build_ranking_scorer`.
      config: RankingConfig.
    """

    def __init__(self, scorer, config):
        super().__init__()
        self.scorer = scorer
        self.config = config
        self.every_impression_negative = config.weighted and config.negatives == "all_impressions"
        # The click head always learns on subsampled negatives: + log(r) corrects it. The watch
        # head needs it only with the paper's negatives (all_impressions reweighs them instead).
        self.click_logit_offset = math.log(config.negative_subsample_rate)
        self.logit_offset = 0.0 if self.every_impression_negative else self.click_logit_offset
        self.logit_scale = tf.Variable(1.0, trainable=False, name="logit_scale")
        self.logit_shift = tf.Variable(0.0, trainable=False, name="logit_shift")
        self.watch_task = tfrs.tasks.Ranking(
            loss=WatchTimeLoss() if self.every_impression_negative else WeightedLogisticLoss(),
            name="watch_task")
        self.click_task = tfrs.tasks.Ranking(
            loss=tf.keras.losses.BinaryCrossentropy(from_logits=True),
            metrics=[tf.keras.metrics.AUC(from_logits=True, name="click_auc")], name="click_task")

    def _inputs(self, features):
        return {name: features[name] for name in self.scorer.input}

    def compute_loss(self, features, training=False):
        out = self.scorer(self._inputs(features), training=training)
        clicked = features["clicked"]
        if self.every_impression_negative:
            target = tf.cast(clicked, tf.float32) * tf.cast(features["watch_time"], tf.float32)
            weight = None
            if self.config.negative_subsample_rate < 1:
                weight = tf.where(tf.cast(clicked, tf.bool), 1.0,
                                  1.0 / self.config.negative_subsample_rate)
            loss = self.watch_task(target, out["logit"], sample_weight=weight, training=training)
        else:
            weight = watch_time_weights(clicked, features["watch_time"]) \
                if self.config.weighted else None
            loss = self.watch_task(clicked, out["logit"], sample_weight=weight, training=training)
        if self.config.click_head:
            return loss + self.click_task(clicked, out["click_logit"], training=training)
        self.click_task(clicked, out["logit"], training=training)  # AUC only; loss unused
        return loss

    def served_output_names(self):
        """Names of `call`'s outputs, in order."""
        names = ["logit", "expected_watch_time"]
        if self.config.click_head:
            names.append("click_probability")
            if not self.every_impression_negative:
                names.append("expected_watch_time_corrected")
        return names

    def call(self, features, training=False):
        out = self.scorer(self._inputs(features), training=training)
        logit = self.logit_scale * (out["logit"] + self.logit_offset) + self.logit_shift
        served = {"logit": logit, "expected_watch_time": tf.exp(logit)}
        if self.config.click_head:
            served["click_probability"] = tf.sigmoid(out["click_logit"] + self.click_logit_offset)
            if not self.every_impression_negative:
                served["expected_watch_time_corrected"] = served["expected_watch_time"] * (
                    1.0 - served["click_probability"])
        return served


def ranking_artifacts(config, train_examples, video_ids):
    """What fixes the ranker's vocabularies and CDF boundaries, from its training impressions
    (JSON-able, so a saved ranker is rebuilt without them: `ranking_model_from_artifacts`).

    Args:
      config: RankingConfig.
      train_examples: ranking ExampleSet (all training impressions, before any subsampling, so
        the CDF is that of the impressions served).
      video_ids: [V] corpus ids (the candidate generator's).
    Returns:
      {"video_ids": [V] str, "languages": sorted language values seen in training,
       "boundaries": [F][q + 1] float CDF boundaries of `continuous_inputs(config)`}.
    """
    if not 0 < config.negative_subsample_rate <= 1:
        raise ValueError(f"negative_subsample_rate must be in (0, 1], got "
                         f"{config.negative_subsample_rate}")
    names = continuous_inputs(config)
    missing = [n for n in names if n not in train_examples.columns]
    if missing:
        raise ValueError(f"ranking examples lack {missing} (cg_score comes from "
                         "candidate_generation_scores; or drop it from ranking features)")
    boundaries = quantile_boundaries(
        np.stack([np.asarray(train_examples[n], np.float64) for n in names], axis=1),
        config.quantiles) if names else np.zeros((0, 2))
    languages = set()
    if "language" in config.features:
        languages = set(np.asarray(train_examples["user_language"]).astype(str)) | \
            set(np.asarray(train_examples["video_language"]).astype(str))
    # tolist(): float64 -> Python floats, which JSON writes and reads back exactly.
    return {"video_ids": [str(v) for v in video_ids], "languages": sorted(languages),
            "boundaries": np.asarray(boundaries).tolist()}


def ranking_model_from_artifacts(config, artifacts):
    """An untrained RankingModel with the vocabularies and boundaries of `ranking_artifacts`."""
    scorer = build_ranking_scorer(config, artifacts["video_ids"], artifacts["languages"],
                                  artifacts["boundaries"])
    return RankingModel(scorer, config)


def build_ranking_model(config, train_examples, video_ids):
    """A RankingModel with vocabularies and CDF boundaries fitted on the training examples
    (arguments as `ranking_artifacts`)."""
    return ranking_model_from_artifacts(config, ranking_artifacts(config, train_examples,
                                                                  video_ids))
