"""Training the ranker with the epoch chosen on validation: by the paper's weighted per-user loss
(docs/PROTOCOL.md), or by the weighted logistic loss, a proper scoring rule that also rewards
calibration (`RankingConfig.selection_metric`).

`train_ranker` is the stage's entry point: ranking ExampleSets in (from
`tfrec.features.ranking_examples`), a trained RankingModel and a result dict for metrics.json out.
"""

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from tfrec.config import RankingConfig
from tfrec.evaluation.ranking import calibration, evaluate_ranking
from tfrec.features.dataset import padded_features
from tfrec.features.example_set import ExampleSet
from tfrec.tf_keras2 import tf
from tfrec.models.ranking import RankingModel, build_ranking_model, ranking_model_from_artifacts
from tfrec.models.ranking_calibration import fit_logit_calibration, objective, objective_weights
from tfrec.models.training import (LEARNING_RATE_HINT, _optimizer, fit_choosing_epoch,
                                   read_artifacts, restore_weights)
LABEL_COLUMNS = ("clicked", "watch_time")


def ranking_features(examples: ExampleSet, input_names: Sequence[str],
                     max_history: int) -> dict[str, np.ndarray]:
    """numpy dict of the named model inputs plus the labels, e.g. {"watch_history": [n, H], ...}.

    Args:
      examples: ranking ExampleSet.
      input_names: the scorer's inputs (`model.scorer.input`).
    """
    missing = [n for n in input_names if n not in examples.columns]
    if missing:
        raise ValueError(f"ranking examples lack column(s) {missing}")
    keep = [n for n in (*input_names, *LABEL_COLUMNS) if n in examples.columns]
    return padded_features(ExampleSet({n: examples[n] for n in keep}), max_history, 1)


def ranking_dataset(features: Mapping[str, np.ndarray], batch_size: int,
                    shuffle_seed: int | None = None) -> Any:
    """Batched, prefetched tf.data.Dataset over a `ranking_features` dict."""
    ds = tf.data.Dataset.from_tensor_slices(features)
    if shuffle_seed is not None:
        ds = ds.shuffle(len(next(iter(features.values()))), seed=shuffle_seed,
                        reshuffle_each_iteration=True)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def subsample_negatives(examples: ExampleSet, rate: float, seed: int = 0) -> ExampleSet:
    """Keep every clicked impression and each other one with probability `rate` (seeded)."""
    if rate >= 1:
        return examples
    keep = (np.asarray(examples["clicked"]) == 1) | \
        (np.random.default_rng(seed).random(len(examples)) < rate)
    return examples.take(keep)


def predict_ranker(model: RankingModel, examples: ExampleSet,
                   batch_size: int = 4096) -> dict[str, np.ndarray]:
    """{output name: [n] numpy} of the served outputs (logit, expected_watch_time, ...)."""
    features = ranking_features(examples, list(model.scorer.input), model.config.max_history)
    inputs = {n: features[n] for n in model.scorer.input}
    out = model.predict(inputs, batch_size=batch_size, verbose=0)
    return {k: np.asarray(v).reshape(-1) for k, v in out.items()}


def _objective_weights(model: RankingModel,
                       examples: ExampleSet) -> tuple[np.ndarray, np.ndarray]:
    return objective_weights(examples["clicked"], examples["watch_time"], model.config.weighted,
                             model.config.negatives)


def calibrate_ranker(model: RankingModel, validation_examples: ExampleSet) -> dict[str, float]:
    """Fit the model's logit scale and shift on validation (`tfrec.models.ranking_calibration`);
    returns {"scale", "shift", "objective_before", "objective_after"}."""
    model.logit_scale.assign(1.0)
    model.logit_shift.assign(0.0)
    logits = predict_ranker(model, validation_examples)["logit"]
    weights = _objective_weights(model, validation_examples)
    scale, shift = fit_logit_calibration(logits, *weights)
    model.logit_scale.assign(scale)
    model.logit_shift.assign(shift)
    return {"scale": scale, "shift": shift, "objective_before": objective(logits, *weights),
            "objective_after": objective(scale * logits + shift, *weights)}


def evaluate_ranker(model: RankingModel, examples: ExampleSet,
                    true_expected_column: str | None = None) -> dict[str, Any]:
    """`evaluate_ranking` of the model's logit (ranking) and exp(logit) (calibration), plus the
    mean training objective of the served logit on all impressions (`weighted_logistic_loss`)."""
    out = predict_ranker(model, examples)
    metrics = evaluate_ranking(examples, out["logit"], out["expected_watch_time"],
                               true_expected_column)
    metrics["weighted_logistic_loss"] = objective(out["logit"], *_objective_weights(model,
                                                                                    examples))
    if true_expected_column is not None and "expected_watch_time_corrected" in out:
        metrics["calibration_corrected"] = calibration(out["expected_watch_time_corrected"],
                                                       examples[true_expected_column])
    return metrics


def train_ranker(train_examples: ExampleSet, validation_examples: ExampleSet,
                 config: RankingConfig, video_ids: Sequence[str],
                 test_examples: ExampleSet | None = None, true_expected_column: str | None = None,
                 log: Callable[[str], None] = print) -> tuple[RankingModel, dict[str, Any]]:
    """Train the ranker, choosing the epoch on validation; returns (model, result dict).

    Args:
      train_examples, validation_examples, test_examples: ranking ExampleSets (test optional).
      config: RankingConfig.
      video_ids: [V] corpus ids (the candidate generator's vocabulary).
      true_expected_column: column with the true expected watch time (a simulator's), for
        calibration; None skips it.
    Returns:
      (RankingModel with the best epoch's weights, dict: best_epoch, epochs_run, validation and
      test metrics (`evaluate_ranking`), train_examples_per_second, history, config).
    """
    tf.keras.utils.set_random_seed(config.seed)
    if len(train_examples) == 0 or len(validation_examples) == 0:
        raise ValueError("train_ranker needs training and validation impressions")
    model = build_ranking_model(config, train_examples, video_ids)
    model.compile(optimizer=_optimizer(config))
    kept = subsample_negatives(train_examples, config.negative_subsample_rate, config.seed)
    features = ranking_features(kept, list(model.scorer.input), config.max_history)
    train_ds = ranking_dataset(features, config.batch_size, shuffle_seed=config.seed)

    def validate(epoch: int, loss: float) -> tuple[tuple[float, float], dict[str, float]]:
        val = evaluate_ranker(model, validation_examples)
        log(f"  ranking epoch {epoch}: loss {loss:.4f}  validation weighted per-user loss "
            f"{val['weighted_per_user_loss']:.4f}  click AUC {val['click_auc']:.4f}")
        # Ties in the ranking metric (same order on every page) go to the better log loss.
        key = (val["weighted_per_user_loss"], val["weighted_logistic_loss"])
        figures = {f"validation_{k}": val[k] for k in ("weighted_per_user_loss",
                                                       "weighted_logistic_loss", "click_auc")}
        return (key if config.selection_metric == "weighted_per_user_loss" else key[::-1]), \
            figures

    best_epoch, history, train_seconds = fit_choosing_epoch(
        model, train_ds, config.epochs, config.patience, validate, stage="ranking",
        hint=LEARNING_RATE_HINT.format(section="ranking.model"))
    calibration = None
    if config.calibrate:
        calibration = calibrate_ranker(model, validation_examples)
        log("  calibrated on validation: served logit = {scale:.3f} * logit {shift:+.3f} "
            "(objective {objective_before:.4f} -> {objective_after:.4f})".format(**calibration))
    result = {
        "best_epoch": best_epoch,
        "logit_calibration": calibration,
        "epochs_run": len(history),
        "train_impressions": int(len(train_examples)),
        "train_impressions_used": int(len(kept)),
        "validation": evaluate_ranker(model, validation_examples, true_expected_column),
        "train_examples_per_second": round(len(history) * len(kept) / max(train_seconds, 1e-9)),
        "history": history,
        "config": config.model_dump(),
    }
    if test_examples is not None and len(test_examples):
        result["test"] = evaluate_ranker(model, test_examples, true_expected_column)
    return model, result


def load_ranker(weights_path: str, config: RankingConfig) -> RankingModel:
    """The RankingModel `tfrec.models.training.save_model` saved with its `ranking_artifacts`
    (vocabularies, CDF boundaries): rebuilt from them and `config` (RankingConfig), its weights
    (calibration included) restored; no ranking example is read."""
    return restore_weights(ranking_model_from_artifacts(config, read_artifacts(weights_path)),
                           weights_path)
