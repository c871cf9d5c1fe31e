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


def query_scorer(model, tower):
    """score(queries, start, end) -> [end - start, N] exact scores over the model's corpus."""
    video_ids, table = model.candidate_table()
    cache = {}

    def score(queries, start, end):
        if id(queries) not in cache:
            features = padded_features(queries, tower.max_history, tower.max_search_tokens)
            cache.clear()
            cache[id(queries)] = model.query_vectors(features)
        return cache[id(queries)][start:end] @ table.T

    return score


def evaluate_model(model, queries, tower, ks=(10, 50, 100)):
    """P1 metrics of the model on held-out queries (exact full-corpus scores, history excluded)."""
    video_ids, _ = model.candidate_table()
    score = query_scorer(model, tower)
    return evaluate_next_watch(lambda s, e: score(queries, s, e), queries, video_ids, ks=ks)


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
    history, best, best_weights, since_best = [], None, None, 0
    train_seconds, steps = 0.0, 0
    for epoch in range(1, training.epochs + 1):
        start = time.perf_counter()
        fit = model.fit(train_ds, epochs=1, verbose=0)
        train_seconds += time.perf_counter() - start
        steps += len(examples.train) // training.batch_size
        val = evaluate_model(model, examples.validation, tower, ks)
        score = val[training.selection_metric]
        history.append({"epoch": epoch, "loss": float(fit.history["loss"][-1]),
                        **{k: v for k, v in val.items() if k != "queries"}})
        log(f"  epoch {epoch}: loss {history[-1]['loss']:.4f}  validation "
            f"{training.selection_metric} {score:.4f}")
        if best is None or score > best[1]:
            best, best_weights, since_best = (epoch, score), model.get_weights(), 0
        else:
            since_best += 1
            if since_best >= training.patience:
                break
    model.set_weights(best_weights)
    result = {
        "loss": softmax.loss,
        "best_epoch": best[0],
        "epochs_run": len(history),
        "validation": evaluate_model(model, examples.validation, tower, ks),
        "test": evaluate_model(model, examples.test, tower, ks),
        "train_examples_per_second": round(steps * training.batch_size / max(train_seconds, 1e-9)),
        "history": history,
    }
    return model, result
