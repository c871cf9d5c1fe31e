"""Held-out evaluation of a candidate generator (or a baseline) on validation and test."""
import functools
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from tfrec.data.simulator.world import World
from tfrec.evaluation.bootstrap import paired_bootstrap
from tfrec.evaluation.next_watch import evaluate_next_watch
from tfrec.evaluation.true_affinity import recall_of_true_top_k
from tfrec.features.example_set import ExampleSet

if TYPE_CHECKING:  # the examples builder, imported for its type only
    from tfrec.features.local_driver import CandidateExamples

# callable(queries, start, end) -> [end - start, N] scores of queries[start:end] on the corpus.
QueryScoreFn = Callable[[ExampleSet, int, int], npt.ArrayLike]

SPLITS = ("validation", "test")
# The figures a model is compared on against a baseline, query by query.
COMPARED = ("recall@10", "recall@100", "ndcg@10", "map@100")


def evaluate_candidates(score: QueryScoreFn, examples: "CandidateExamples",
                        corpus_ids: npt.ArrayLike, ks: Sequence[int] = (10, 50, 100),
                        world: World | None = None, splits: Sequence[str] = SPLITS,
                        per_query: bool = False,
                        videos: pd.DataFrame | None = None) -> Any:
    """Next-watch metrics per split; on a simulated world also recall of the true top-K, and
    where the videos' upload times are known the fresh slice and the age profile.

    Args:
      score: callable(queries, start, end) -> [end - start, N] scores of queries[start:end]
        against `corpus_ids`.
      examples: CandidateExamples (its validation and test query sets are used).
      world: the simulator World behind the events, or None.
      videos: the videos table, or None (`tfrec.evaluation.freshness`: used when it has
        upload_timestamp).
      per_query: also return each split's per-query figures (`evaluate_next_watch`).
    Returns:
      {split: {recall@k..., ndcg@10, map@100, [true_recall@k...], queries,
      rewatch_targets_skipped, [fresh, age_profile]}}; with per_query, (that, {split:
      per-query DataFrame}).
    """
    result: dict[str, dict[str, Any]] = {}
    tables: dict[str, pd.DataFrame] = {}
    for split in splits:
        queries = getattr(examples, split)
        result[split], tables[split] = evaluate_next_watch(
            functools.partial(score, queries), queries, corpus_ids, ks=ks, per_query=True)
    if world is not None:
        for split, truth in true_recall(score, examples, corpus_ids, world, ks, splits).items():
            truth.pop("queries")
            result[split].update(truth)
    from tfrec.evaluation.freshness import has_upload_times, served_age_figures
    if videos is not None and has_upload_times(videos):
        for split, figures in served_age_figures(score, examples, corpus_ids, videos, ks,
                                                 splits).items():
            result[split].update(figures)
    return (result, tables) if per_query else result


def true_recall(score: QueryScoreFn, examples: "CandidateExamples", corpus_ids: npt.ArrayLike,
                world: World, ks: Sequence[int] = (10, 50, 100), splits: Sequence[str] = SPLITS
                ) -> dict[str, dict[str, float | int]]:
    """{split: {true_recall@k..., queries, rewatch_targets_skipped}}: recall of the true top-K
    by affinity per split, over the queries the next-watch metrics score."""
    result = {}
    for split in splits:
        queries = getattr(examples, split)
        result[split] = recall_of_true_top_k(functools.partial(score, queries), queries,
                                             corpus_ids, world, ks=ks)
    return result


def compare_per_query(model: pd.DataFrame, baseline: pd.DataFrame,
                      metrics: Sequence[str] = COMPARED, seed: int = 0
                      ) -> dict[str, dict[str, Any]]:
    """Model minus baseline on the same queries, with paired-bootstrap 95% intervals.

    Args:
      model, baseline: per-query DataFrames of one split (`evaluate_next_watch(per_query=True)`),
        with the same `query` rows.
      metrics: the columns compared.
    Returns:
      {metric: {"difference": mean(model - baseline), "ci95": [lo, hi]}}.
    Raises:
      ValueError: the two tables are not over the same queries.
    """
    if not np.array_equal(model["query"].to_numpy(), baseline["query"].to_numpy()):
        raise ValueError("per-query figures of different query sets cannot be paired")
    return {m: paired_bootstrap(model[m].to_numpy(), baseline[m].to_numpy(), seed=seed)
            for m in metrics}
