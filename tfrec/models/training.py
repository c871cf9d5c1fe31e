"""Training candidate generation with the epoch chosen on validation (P1)."""
import time

import numpy as np
import pandas as pd

from tfrec.evaluation.next_watch import evaluate_next_watch
from tfrec.features.dataset import candidate_dataset, padded_features
from tfrec.keras_check import require_keras2
from tfrec.models.candidate_generation import CandidateGenerationModel
from tfrec.models.config import TrainingConfig  # noqa: F401  (re-exported)

tf = require_keras2()


def _optimizer(config):
    if config.optimizer == "adam":
        return tf.keras.optimizers.Adam(config.learning_rate)
    if config.optimizer == "adagrad":
        return tf.keras.optimizers.Adagrad(config.learning_rate)
    raise ValueError(f"unknown optimizer {config.optimizer!r}; use adam or adagrad")


def build_model(examples, users, corpus_ids, tower, softmax, seed=0):
    """A CandidateGenerationModel fitted to the vocabularies and counts of the training data."""
    counts = pd.Series(examples.train["label"]).value_counts().reindex(corpus_ids, fill_value=0)
    vocabularies = {c: users[c].astype(str).tolist() for c in users.columns if c != "user_id"}
    max_age = float(np.max(examples.train["example_age"])) if len(examples.train) else 1.0
    return CandidateGenerationModel(corpus_ids, counts.to_numpy(), vocabularies, max_age, tower,
                                    softmax, seed=seed)


def evaluate_model(model, queries, tower, ks=(10, 50, 100)):
    """P1 metrics of the model on held-out queries (exact full-corpus scores, history excluded)."""
    features = padded_features(queries, tower.max_history, tower.max_search_tokens)
    u = model.query_vectors(features)
    video_ids, table = model.candidate_table()
    return evaluate_next_watch(lambda s, e: u[s:e] @ table.T, queries, video_ids, ks=ks)


def fit_choosing_epoch(model, dataset, epochs, patience, validate):
    """Fit one epoch at a time, keep the weights of the epoch that validates best.

    Args:
      model: a compiled Keras model.
      dataset: the training tf.data.Dataset.
      epochs: most epochs; stops after `patience` epochs without a better validation key.
      validate: callable(epoch, training loss) -> (key, dict of figures); lower key is better
        (any comparable value, e.g. a tuple for tie-breaks).
    Returns:
      (best epoch, history [{"epoch", "loss", **figures}], training seconds); the model holds
      the best epoch's weights.
    """
    history, best, best_weights, since_best, seconds = [], None, None, 0, 0.0
    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        fit = model.fit(dataset, epochs=1, verbose=0)
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
    model.set_weights(best_weights)
    return best[0], history, seconds


def train_candidate_generation(examples, users, corpus_ids, tower, softmax, training,
                               ks=(10, 50, 100), log=print):
    """Train, choosing the epoch on validation; returns (model, result dict)."""
    tf.keras.utils.set_random_seed(training.seed)
    if len(examples.train) < training.batch_size:
        raise ValueError(f"{len(examples.train)} training examples: fewer than one batch of "
                         f"{training.batch_size} (lower candidate_generation.training.batch_size)")
    model = build_model(examples, users, corpus_ids, tower, softmax, seed=training.seed)
    model.compile(optimizer=_optimizer(training))
    train_ds = candidate_dataset(examples.train, training.batch_size, tower.max_history,
                                 tower.max_search_tokens, shuffle_seed=training.seed,
                                 drop_remainder=True)

    def validate(epoch, loss):
        val = evaluate_model(model, examples.validation, tower, ks)
        score = val[training.selection_metric]
        log(f"  epoch {epoch}: loss {loss:.4f}  validation {training.selection_metric} "
            f"{score:.4f}")
        return -score, {k: v for k, v in val.items() if k != "queries"}

    best_epoch, history, train_seconds = fit_choosing_epoch(
        model, train_ds, training.epochs, training.patience, validate)
    steps = len(history) * (len(examples.train) // training.batch_size)
    result = {
        "loss": softmax.loss,
        "best_epoch": best_epoch,
        "epochs_run": len(history),
        "validation": evaluate_model(model, examples.validation, tower, ks),
        "test": evaluate_model(model, examples.test, tower, ks),
        "train_examples_per_second": round(steps * training.batch_size / max(train_seconds, 1e-9)),
        "history": history,
    }
    return model, result
