"""Training candidate generation with the epoch chosen on validation (P1), resumable.

With a `checkpoint_dir`, every epoch ends with a checkpoint (tf.train.CheckpointManager) of the
model (including the negative sampler's generator and the dropout step counters), the optimizer,
and the loop's state: epoch, best epoch and score, the best weights, patience counter, history.
A run killed at any point resumes from its last finished epoch and ends with the metrics an
uninterrupted run would have: batch order depends only on (seed, epoch) and every random draw
comes from checkpointed state.
"""
import json
import os
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from tfrec.config import SoftmaxConfig, TrainingConfig, UserTowerConfig
from tfrec.evaluation.exact_scoring import ScoreFn, dot_product_scores
from tfrec.evaluation.next_watch import COUNTS, evaluate_next_watch
from tfrec.evaluation.sampling import sample_queries
from tfrec.features.example_set import ExampleSet
from tfrec.features.dataset import EpochBatches, padded_features
from tfrec.features.example_records import label_counts, max_example_age, read_facts
from tfrec.features.shard_dataset import ShardBatches
from tfrec.tf_keras2 import tf
from tfrec.models.candidate_generation import CandidateGenerationModel
from tfrec.models.finite import StopOnNonFiniteLoss
from tfrec.progress import progress_bar

if TYPE_CHECKING:  # the examples builder, imported for its type only
    from tfrec.features.local_driver import CandidateExamples

TRAIN_SPLIT = "train"  # the split name of the training shards and their facts file

# Appended to the error when a training loss is not finite.
LEARNING_RATE_HINT = " (try a lower '{section}.learning_rate')"


def _optimizer(config: Any) -> tf.keras.optimizers.Optimizer:
    if config.optimizer == "adam":
        return tf.keras.optimizers.Adam(config.learning_rate)
    if config.optimizer == "adagrad":
        return tf.keras.optimizers.Adagrad(config.learning_rate)
    raise ValueError(f"unknown optimizer {config.optimizer!r}; use adam or adagrad")


def model_artifacts(examples: "CandidateExamples", users: pd.DataFrame,
                    corpus_ids: Sequence[str] | np.ndarray) -> dict[str, Any]:
    """What fixes a model's vocabularies and shapes, taken from its training data (JSON-able).

    Returns:
      {"video_ids": [V] str, "label_counts": [V] int (training labels per video),
       "demographic_vocabularies": {column: sorted distinct values},
       "max_example_age_seconds": float}.
    """
    if examples.train_shards is not None:  # streaming: the facts file, not the examples
        facts = read_facts(examples.train_shards, TRAIN_SPLIT)
        counts, max_age = facts.label_counts, facts.max_example_age_seconds
    else:
        counts = label_counts(examples.train["label"])
        max_age = max_example_age(examples.train["example_age"])
    return {
        "video_ids": [str(v) for v in corpus_ids],
        "label_counts": [counts.get(str(v), 0) for v in corpus_ids],
        "demographic_vocabularies": {c: sorted(set(users[c].astype(str)))
                                     for c in users.columns if c != "user_id"},
        "max_example_age_seconds": max_age,
    }


def training_batches(examples: "CandidateExamples", tower: UserTowerConfig,
                     training: TrainingConfig) -> EpochBatches | ShardBatches:
    """The training batches: streamed from the shards when the examples have them
    (`examples.shards` > 0), else from the in-memory training examples."""
    if examples.train_shards is not None:
        facts = read_facts(examples.train_shards, TRAIN_SPLIT)
        return ShardBatches.from_facts(facts, examples.train_shards, training.batch_size,
                                       max_history=tower.max_history,
                                       max_search_tokens=tower.max_search_tokens,
                                       seed=training.seed, shuffle_buffer=training.shuffle_buffer)
    return EpochBatches(examples.train, training.batch_size, tower.max_history,
                        tower.max_search_tokens, seed=training.seed)


def model_from_artifacts(artifacts: dict[str, Any], tower: UserTowerConfig,
                         softmax: SoftmaxConfig, seed: int = 0) -> CandidateGenerationModel:
    """A CandidateGenerationModel (untrained) with the vocabularies and counts of `artifacts`."""
    return CandidateGenerationModel(np.asarray(artifacts["video_ids"], dtype=object),
                                    np.asarray(artifacts["label_counts"], dtype=np.int64),
                                    artifacts["demographic_vocabularies"],
                                    artifacts["max_example_age_seconds"], tower, softmax,
                                    seed=seed)


def build_model(examples: "CandidateExamples", users: pd.DataFrame,
                corpus_ids: Sequence[str] | np.ndarray,
                tower: UserTowerConfig, softmax: SoftmaxConfig, seed: int = 0
                ) -> CandidateGenerationModel:
    """A CandidateGenerationModel fitted to the vocabularies and counts of the training data."""
    return model_from_artifacts(model_artifacts(examples, users, corpus_ids), tower, softmax,
                                seed)


def _artifacts_path(weights_path: str) -> str:
    return f"{weights_path}.artifacts.json"


def save_model(model: tf.keras.Model, weights_path: str, artifacts: dict[str, Any]) -> None:
    """TensorFlow-checkpoint weights at `weights_path` (a file prefix) and, beside them,
    `artifacts` (what rebuilds the model: `model_artifacts`, or the ranker's
    `tfrec.models.ranking.ranking_artifacts`) as JSON, so loading it reads no training data."""
    model.save_weights(weights_path)
    tmp = _artifacts_path(weights_path) + ".tmp"
    with open(tmp, "w") as f:
        json.dump(artifacts, f)
    os.replace(tmp, _artifacts_path(weights_path))


def read_artifacts(weights_path: str) -> dict[str, Any]:
    """The artifacts `save_model` wrote beside `weights_path`."""
    with open(_artifacts_path(weights_path)) as f:
        return json.load(f)


def restore_weights(model: tf.keras.Model, weights_path: str) -> tf.keras.Model:
    """`model` (built from its artifacts) with the weights `save_model` saved; the
    optimizer's slots and other training-only state, absent from the file, are not expected."""
    model.load_weights(weights_path).expect_partial()
    return model


def load_model(weights_path: str, tower: UserTowerConfig, softmax: SoftmaxConfig, seed: int = 0
               ) -> CandidateGenerationModel:
    """The model `save_model` saved: rebuilt from its artifacts and the configs (which fix the
    vocabularies and shapes), then its weights restored."""
    return restore_weights(model_from_artifacts(read_artifacts(weights_path), tower, softmax,
                                                seed), weights_path)


def query_scorer(model: CandidateGenerationModel, tower: UserTowerConfig
                 ) -> Callable[[ExampleSet, int, int], tf.Tensor]:
    """score(queries, start, end) -> [end - start, N] exact float32 scores over the model's
    corpus, in TensorFlow (the user vectors of the latest query set are kept, so chunks do not
    recompute them)."""
    _, table = model.candidate_table()
    cache: dict[int, ScoreFn] = {}

    def score(queries: ExampleSet, start: int, end: int) -> tf.Tensor:
        if id(queries) not in cache:
            features = padded_features(queries, tower.max_history, tower.max_search_tokens)
            cache.clear()
            cache[id(queries)] = dot_product_scores(model.query_vectors(features), table)
        return cache[id(queries)](start, end)

    return score


def evaluate_model(model: CandidateGenerationModel, queries: ExampleSet, tower: UserTowerConfig,
                   ks: Sequence[int] = (10, 50, 100),
                   features: dict[str, np.ndarray] | None = None, per_query: bool = False) -> Any:
    """P1 metrics of the model on held-out queries (exact full-corpus scores, history excluded,
    re-watch targets skipped: `evaluate_next_watch`).

    features: the padded features of `queries`, when already computed (saves time per epoch).
    per_query: also return the per-query figures (`evaluate_next_watch`).
    """
    if features is None:
        features = padded_features(queries, tower.max_history, tower.max_search_tokens)
    video_ids, table = model.candidate_table()
    return evaluate_next_watch(dot_product_scores(model.query_vectors(features), table),
                               queries, video_ids, ks=ks, per_query=per_query)


class TrainingState(tf.Module):
    """The training loop's state, as variables so a checkpoint holds it.

    Attributes:
      epoch: last finished epoch; done: 1 once early stopping (or the last epoch) ended training.
      best_epoch, best_score, since_best: early-stopping bookkeeping.
      best_weights: copies of the model's weights at the best epoch.
      history: JSON list of per-epoch records; train_seconds, steps: throughput bookkeeping.
    """

    def __init__(self, model: tf.keras.Model) -> None:
        super().__init__(name="training_state")
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.done = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.best_epoch = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.best_score = tf.Variable(-np.inf, dtype=tf.float64, trainable=False)
        self.since_best = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.best_weights = [tf.Variable(w, trainable=False) for w in model.weights]
        self.history = tf.Variable("[]", dtype=tf.string, trainable=False)
        self.train_seconds = tf.Variable(0.0, dtype=tf.float64, trainable=False)
        self.steps = tf.Variable(0, dtype=tf.int64, trainable=False)

    def get_history(self) -> list[dict[str, Any]]:
        return json.loads(self.history.numpy().decode())


class _BatchProgress(tf.keras.callbacks.Callback):
    """Advances a progress bar per training batch and shows the running loss."""

    def __init__(self, bar: Any) -> None:
        super().__init__()
        self.bar = bar

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        self.bar.update(1)
        if logs and batch % 20 == 0:
            self.bar.set_postfix(loss=f"{float(logs['loss']):.3f}")


def fit_choosing_epoch(model: tf.keras.Model, dataset: tf.data.Dataset, epochs: int,
                       patience: int, validate: Callable[[int, float], tuple[Any, dict[str, Any]]],
                       stage: str = "model", hint: str = ""
                       ) -> tuple[int, list[dict[str, Any]], float]:
    """Fit one epoch at a time, keep the weights of the epoch that validates best.

    Args:
      model: a compiled Keras model.
      dataset: the training tf.data.Dataset.
      epochs: most epochs; stops after `patience` epochs without a better validation key.
      validate: callable(epoch, training loss) -> (key, dict of figures); lower key is better
        (any comparable value, e.g. a tuple for tie-breaks).
      stage, hint: name and advice in the NonFiniteError raised when a batch loss is not finite.
    Returns:
      (best epoch, history [{"epoch", "loss", **figures}], training seconds); the model holds
      the best epoch's weights.
    """
    history: list[dict[str, Any]] = []
    best: tuple[int, Any] | None = None
    best_weights, since_best, seconds = None, 0, 0.0
    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        fit = model.fit(dataset, epochs=1, verbose=0,
                        callbacks=[StopOnNonFiniteLoss(stage, epoch, hint)])
        seconds += time.perf_counter() - start
        loss = float(fit.history["loss"][-1])
        key, figures = validate(epoch, loss)
        history.append({"epoch": epoch, "loss": loss, **figures})
        if best is None or key < best[1]:
            best, best_weights, since_best = (epoch, key), model.get_weights(), 0
        else:
            since_best += 1
            if since_best >= patience:
                break
    assert best is not None, "epochs >= 1 (the config's bound)"
    model.set_weights(best_weights)
    return best[0], history, seconds


def train_candidate_generation(examples: "CandidateExamples", users: pd.DataFrame,
                               corpus_ids: Sequence[str] | np.ndarray, tower: UserTowerConfig,
                               softmax: SoftmaxConfig, training: TrainingConfig,
                               ks: Sequence[int] = (10, 50, 100),
                               log: Callable[[str], object] = print,
                               checkpoint_dir: str | None = None,
                               tensorboard_dir: str | None = None, progress: bool = False,
                               validation_users: int | None = None, sample_seed: int = 0
                               ) -> tuple[CandidateGenerationModel, dict[str, Any]]:
    """Train, choosing the epoch on validation; returns (model, result dict).

    Args:
      examples: CandidateExamples (train, validation, test).
      users: the users table; corpus_ids: [V] video ids.
      tower, softmax, training: UserTowerConfig, SoftmaxConfig, TrainingConfig.
      checkpoint_dir: resume from / checkpoint into this folder every epoch (None: no checkpoints).
      tensorboard_dir: write per-epoch loss and validation metrics there (tf.summary).
      progress: draw a progress bar over each epoch's batches.
      validation_users, sample_seed: validate (every epoch and at the chosen epoch) on the
        queries of this many validation users, drawn by `sample_seed`
        (`tfrec.evaluation.sampling`); None: on every validation query.
    """
    tf.keras.utils.set_random_seed(training.seed)
    batches = training_batches(examples, tower, training)
    if batches.size < training.batch_size:
        raise ValueError(f"{batches.size} training examples: fewer than one batch of "
                         f"{training.batch_size} (lower candidate_generation.training.batch_size)")
    model = build_model(examples, users, corpus_ids, tower, softmax, seed=training.seed)
    optimizer = _optimizer(training)
    # Slot variables made now, not inside the first training step: tf.function traces a step
    # that creates variables twice (seconds of tracing).
    optimizer.build(model.trainable_variables)
    model.compile(optimizer=optimizer)
    validation_sample = sample_queries(examples.validation, validation_users, sample_seed) \
        if validation_users is not None else None
    validation_queries = examples.validation if validation_sample is None \
        else examples.validation.take(validation_sample.rows)
    validation = padded_features(validation_queries, tower.max_history, tower.max_search_tokens)
    state = TrainingState(model)
    manager = None
    if checkpoint_dir:
        checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, state=state)
        manager = tf.train.CheckpointManager(checkpoint, checkpoint_dir, max_to_keep=1)
        if manager.latest_checkpoint:
            checkpoint.restore(manager.latest_checkpoint)
            log(f"  resumed from {manager.latest_checkpoint} (epoch {int(state.epoch.numpy())})")
    writer = tf.summary.create_file_writer(tensorboard_dir) if tensorboard_dir else None
    history = state.get_history()
    metric = training.selection_metric
    for epoch in range(int(state.epoch.numpy()) + 1, training.epochs + 1):
        if state.done.numpy():
            break
        start = time.perf_counter()
        with progress_bar(total=batches.steps, desc=f"epoch {epoch}", enabled=progress,
                          leave=False) as bar:
            guard = StopOnNonFiniteLoss("candidate_generation", epoch, LEARNING_RATE_HINT.format(
                section="candidate_generation.training"))
            fit = model.fit(batches.epoch(epoch), epochs=1, verbose=0,
                            callbacks=[guard, _BatchProgress(bar)] if progress else [guard])
        train_seconds = time.perf_counter() - start
        val = evaluate_model(model, validation_queries, tower, ks, features=validation)
        score = val[metric]
        history.append({"epoch": epoch, "loss": float(fit.history["loss"][-1]),
                        **{k: v for k, v in val.items() if k not in COUNTS},
                        "train_seconds": round(train_seconds, 3),
                        "seconds": round(time.perf_counter() - start, 3)})
        log(f"  epoch {epoch}: loss {history[-1]['loss']:.4f}  validation {metric} "
            f"{score:.4f}  ({history[-1]['seconds']:.1f}s)")
        if writer is not None:
            with writer.as_default(step=epoch):
                tf.summary.scalar("train/loss", history[-1]["loss"])
                for name, value in val.items():
                    if name not in COUNTS:
                        tf.summary.scalar(f"validation/{name}", value)
            writer.flush()
        state.train_seconds.assign_add(train_seconds)
        state.steps.assign_add(batches.steps)
        if score > state.best_score.numpy():
            state.best_epoch.assign(epoch)
            state.best_score.assign(score)
            state.since_best.assign(0)
            for copy, weight in zip(state.best_weights, model.weights):
                copy.assign(weight)
        else:
            state.since_best.assign_add(1)
        if state.since_best.numpy() >= training.patience or epoch == training.epochs:
            state.done.assign(1)
        state.epoch.assign(epoch)
        state.history.assign(json.dumps(history))
        if manager is not None:
            manager.save(checkpoint_number=epoch)
    for weight, copy in zip(model.weights, state.best_weights):
        weight.assign(copy)
    result = {
        "loss": softmax.loss,
        "best_epoch": int(state.best_epoch.numpy()),
        "epochs_run": len(history),
        "validation": {**evaluate_model(model, validation_queries, tower, ks,
                                        features=validation),
                       **({"sample": validation_sample.describe()} if validation_sample else {})},
        "test": evaluate_model(model, examples.test, tower, ks),
        "train_examples_per_second": round(int(state.steps.numpy()) * training.batch_size /
                                           max(float(state.train_seconds.numpy()), 1e-9)),
        "history": history,
    }
    return model, result
