"""The ranker: weighted logistic regression for expected watch time (Covington et al. 2016, sec. 4).

`build_ranking_scorer` is a functional Keras model from raw named features to logits. Its inputs
and their encodings are those of the configured feature groups (`ranking.model.features`), one
module each in tfrec/features/ranker/ (the registry `tfrec.features.ranker.RANKER_FEATURES`):
  video_id        [B] string    -> video embedding (rows: 0 padding "", 1 unknown, 2.. the corpus,
                                   the candidate generator's vocabulary)
  watch_history   [B, H] string -> masked mean of the same embedding table (shared, as the paper)
  language        user_language, video_language [B] string -> one shared language embedding,
                                   plus a 0/1 match
  continuous      [B] float32 each (seconds, counts) -> EmpiricalCDF: x~, x~^2, sqrt(x~); and
                  0/1 indicators [B] float32 (never_watched_channel, never_watched_topic)
  cg_score        [B] float32 -> EmpiricalCDF, with the continuous ones
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
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import tensorflow_recommenders as tfrs

from tfrec.config import RankingConfig
from tfrec.features.example_set import ExampleSet
from tfrec.features.ranker._base import (Encoding, EncodingContext, KerasTensor, RankerFeature,
                                         RankerInput, ranker_features)
from tfrec.tf_keras2 import tf
from tfrec.losses.weighted_logistic import (WatchTimeLoss, WeightedLogisticLoss,
                                            watch_time_weights)
from tfrec.models.layers import EmpiricalCDF, quantile_boundaries, relu_tower

__all__ = ["RankingConfig", "RankingModel", "build_ranking_model", "build_ranking_scorer",
           "cdf_input_names", "indicator_input_names", "ranker_inputs", "ranking_artifacts",
           "ranking_model_from_artifacts"]


def ranker_inputs(config: RankingConfig) -> list[RankerInput]:
    """Every input of the configured feature groups, groups in slot order."""
    return [spec for feature in ranker_features(config.features)
            for spec in feature.inputs(config)]


def _names_encoded(config: RankingConfig, encoding: Encoding) -> list[str]:
    return [spec.name for spec in ranker_inputs(config) if spec.encoding == encoding]


def cdf_input_names(config: RankingConfig) -> list[str]:
    """Names of the CDF-normalised inputs the config uses (the rows of the CDF boundaries)."""
    return _names_encoded(config, "cdf")


def indicator_input_names(config: RankingConfig) -> list[str]:
    """Names of the 0/1 inputs fed as they are."""
    return _names_encoded(config, "indicator")


def _encode_custom(feature: RankerFeature, context: EncodingContext) -> list[KerasTensor]:
    """The group's parts; its custom inputs must all be created by its `encode`."""
    parts = feature.encode(context)
    unused = [spec.name for spec in feature.inputs(context.config)
              if spec.encoding == "custom" and spec.name not in context.inputs]
    if unused:
        raise ValueError(f"ranker feature {feature.name!r} declares custom input(s) {unused} "
                         "that its encode does not read")
    return parts


def build_ranking_scorer(config: RankingConfig, artifacts: Mapping[str, Any]) -> Any:
    """Functional model: named raw inputs -> {"logit": [B], "click_logit": [B]} (training space).

    Its input is, in order: every configured group's custom parts (`RankerFeature.encode`), then
    the EmpiricalCDF of all groups' cdf inputs, then their indicators, groups in slot order.

    Args:
      config: RankingConfig.
      artifacts: from `ranking_artifacts`: "video_ids" [V] corpus ids (unique strings), the
        groups' fitted artifacts (e.g. "languages"), "boundaries" [F, q + 1] CDF boundaries of
        `cdf_input_names(config)`, in that order.
    """
    features = ranker_features(config.features)
    specs = {spec.name: spec for f in features for spec in f.inputs(config)}
    reg = tf.keras.regularizers.l2(config.l2) if config.l2 else None
    context = EncodingContext(config, artifacts, specs, reg)
    parts = [part for feature in features for part in _encode_custom(feature, context)]
    names = cdf_input_names(config)
    if names:
        stacked = tf.stack([context.input(n) for n in names], axis=1)
        parts.append(EmpiricalCDF(np.asarray(artifacts["boundaries"]).tolist(),
                                  name="cdf")(stacked))
    for name in indicator_input_names(config):
        parts.append(context.input(name)[:, None])
    if not parts:
        raise ValueError("the ranker needs at least one feature")
    x = parts[0] if len(parts) == 1 else tf.keras.layers.Concatenate(name="ranking_features")(parts)
    x = relu_tower(x, config.hidden_units, reg)
    logit = tf.keras.layers.Dense(1, name="watch_logit")(x)[:, 0]
    click_logit = tf.keras.layers.Dense(1, name="click_logit")(x)[:, 0]
    return tf.keras.Model(context.inputs, {"logit": logit, "click_logit": click_logit},
                          name="ranking_scorer")


class RankingModel(tfrs.Model):
    """Weighted LR ranker (module docstring). Features include `clicked` and `watch_time`.

    Args:
      scorer: from `build_ranking_scorer`.
      config: RankingConfig.
    """

    def __init__(self, scorer: Any, config: RankingConfig) -> None:
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

    def _inputs(self, features: Mapping[str, Any]) -> dict[str, Any]:
        return {name: features[name] for name in self.scorer.input}

    def compute_loss(self, features: Mapping[str, Any], training: bool = False) -> Any:
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

    def served_output_names(self) -> list[str]:
        """Names of `call`'s outputs, in order."""
        names = ["logit", "expected_watch_time"]
        if self.config.click_head:
            names.append("click_probability")
            if not self.every_impression_negative:
                names.append("expected_watch_time_corrected")
        return names

    def call(self, features: Mapping[str, Any], training: bool = False) -> dict[str, Any]:
        out = self.scorer(self._inputs(features), training=training)
        logit = self.logit_scale * (out["logit"] + self.logit_offset) + self.logit_shift
        served = {"logit": logit, "expected_watch_time": tf.exp(logit)}
        if self.config.click_head:
            served["click_probability"] = tf.sigmoid(out["click_logit"] + self.click_logit_offset)
            if not self.every_impression_negative:
                served["expected_watch_time_corrected"] = served["expected_watch_time"] * (
                    1.0 - served["click_probability"])
        return served


def ranking_artifacts(config: RankingConfig, train_examples: ExampleSet,
                      video_ids: Sequence[str]) -> dict[str, Any]:
    """What fixes the ranker's vocabularies and CDF boundaries, from its training impressions
    (JSON-able, so a saved ranker is rebuilt without them: `ranking_model_from_artifacts`).

    Args:
      config: RankingConfig.
      train_examples: ranking ExampleSet (all training impressions, before any subsampling, so
        the CDF is that of the impressions served).
      video_ids: [V] corpus ids (the candidate generator's).
    Returns:
      {"video_ids": [V] str, <each group's `fit`> (language: "languages", sorted values seen in
       training), "boundaries": [F][q + 1] float CDF boundaries of `cdf_input_names(config)`}.
    """
    if not 0 < config.negative_subsample_rate <= 1:
        raise ValueError(f"negative_subsample_rate must be in (0, 1], got "
                         f"{config.negative_subsample_rate}")
    features = ranker_features(config.features)
    missing, hints = [], []
    for feature in features:
        lacking = [s.name for s in feature.inputs(config) if s.name not in train_examples.columns]
        missing += lacking
        if lacking:
            hints.append(feature.column_hint or f"ranker feature {feature.name!r} reads them")
    if missing:
        raise ValueError(f"ranking examples lack {missing} ({'; '.join(hints)}; or drop it from "
                         "ranking features)")
    artifacts: dict[str, Any] = {"video_ids": [str(v) for v in video_ids]}
    for feature in features:
        fitted = feature.fit(config, train_examples)
        clash = sorted(set(fitted) & {*artifacts, "boundaries"})
        if clash:
            raise ValueError(f"ranker feature {feature.name!r} fits artifact(s) {clash} that "
                             "another group or the scorer already has")
        artifacts.update(fitted)
    names = cdf_input_names(config)
    boundaries = quantile_boundaries(
        np.stack([np.asarray(train_examples[n], np.float64) for n in names], axis=1),
        config.quantiles) if names else np.zeros((0, 2))
    # tolist(): float64 -> Python floats, which JSON writes and reads back exactly.
    artifacts["boundaries"] = np.asarray(boundaries).tolist()
    return artifacts


def ranking_model_from_artifacts(config: RankingConfig,
                                 artifacts: Mapping[str, Any]) -> "RankingModel":
    """An untrained RankingModel with the vocabularies and boundaries of `ranking_artifacts`."""
    return RankingModel(build_ranking_scorer(config, artifacts), config)


def build_ranking_model(config: RankingConfig, train_examples: ExampleSet,
                        video_ids: Sequence[str]) -> "RankingModel":
    """A RankingModel with vocabularies and CDF boundaries fitted on the training examples
    (arguments as `ranking_artifacts`)."""
    return ranking_model_from_artifacts(config, ranking_artifacts(config, train_examples,
                                                                  video_ids))
