"""Cross-fitted candidate generators: honest generator scores for the ranker's training pages.

Under P1 there is no later window for a ranker to train on, and the run's generator was fitted to
the very watches that are the positives of the ranker's training pages: its score u·v (and, on
MovieLens, the pages it retrieves) is optimistic there, and a ranker trained on it learns to
trust cg_score more than it deserves on test (docs/PROTOCOL.md, "A ranker that earns its stage").
Cross-fitting fixes that: users are split into `folds` disjoint groups by a hash of their id;
one generator per fold trains on that fold's users only, and a training page of a user in fold k
is built and scored by a generator that never saw the user (fold (k + 1) % folds). Validation and
test pages are scored by the run's own generator, the one that is exported.
"""
import dataclasses
import zlib
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from tfrec.config import SoftmaxConfig, TrainingConfig, UserTowerConfig

if TYPE_CHECKING:  # the examples builder, imported for its type only
    from tfrec.features.local_driver import CandidateExamples

FOLDS = 2


def user_folds(user_ids: Sequence[object] | np.ndarray, folds: int = FOLDS) -> np.ndarray:
    """[n] int fold of each user id: crc32(id) % folds (the same on every machine and run)."""
    return np.fromiter((zlib.crc32(str(u).encode()) % folds for u in np.asarray(user_ids)),
                       np.int64, len(user_ids))


def fold_examples(examples: "CandidateExamples", fold: int, folds: int = FOLDS
                  ) -> "CandidateExamples":
    """The CandidateExamples of the users of one fold (train, validation, test, watches)."""
    take = lambda s: s.take(np.flatnonzero(user_folds(s["user_id"], folds) == fold))  # noqa
    watches = examples.train_watches
    return dataclasses.replace(
        examples, train=take(examples.train), validation=take(examples.validation),
        test=take(examples.test),
        train_watches=watches[user_folds(watches["user_id"], folds) == fold].reset_index(
            drop=True),
        window_queries=None, train_shards=None)  # a fold trains in memory on its own users


def scoring_fold(user_ids: Sequence[object] | np.ndarray, folds: int = FOLDS) -> np.ndarray:
    """[n] the fold whose generator scores each user's training pages: one that never saw them."""
    return (user_folds(user_ids, folds) + 1) % folds


def train_fold_generators(examples: "CandidateExamples", users: pd.DataFrame,
                          corpus_ids: Sequence[str] | np.ndarray, tower: UserTowerConfig,
                          softmax: SoftmaxConfig,
                          training: TrainingConfig, epochs: int,
                          ks: Sequence[int] = (10, 50, 100),
                          log: Callable[[str], object] = print, folds: int = FOLDS,
                          validation_users: int | None = None, sample_seed: int = 0
                          ) -> list[tuple[Any, dict[str, Any]]]:
    """[(model, result)] one generator per fold, trained like the run's own for `epochs` epochs
    (the run's chosen epoch; each fold's own validation users still pick the best of them).

    Args:
      examples: the run's CandidateExamples; users, corpus_ids, tower, softmax, training: as for
        `train_candidate_generation`; validation_users, sample_seed: each fold's validation
        user sample, as there.
    """
    from tfrec.models.training import train_candidate_generation
    out = []
    for fold in range(folds):
        part = fold_examples(examples, fold, folds)
        schedule = training.model_copy(update={"epochs": epochs, "patience": epochs})
        log(f"  fold {fold + 1}/{folds}: {len(part.train)} training examples, {epochs} epochs")
        out.append(train_candidate_generation(part, users, corpus_ids, tower, softmax, schedule,
                                              ks=ks, log=log, validation_users=validation_users,
                                              sample_seed=sample_seed))
    return out
