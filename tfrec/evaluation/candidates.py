"""Held-out evaluation of a candidate generator (or a baseline) on validation and test."""
import functools
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from tfrec.data.simulator.world import World
from tfrec.evaluation.bootstrap import paired_bootstrap
from tfrec.evaluation.next_watch import evaluate_next_watch
from tfrec.evaluation.sampling import QuerySample, standard_errors
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
                        videos: pd.DataFrame | None = None,
                        samples: Mapping[str, QuerySample] | None = None) -> Any:
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
      samples: {split: QuerySample} to evaluate a split on a user sample only
        (`tfrec.evaluation.sampling`); a split without one is evaluated on all its queries.
    Returns:
      {split: {recall@k..., ndcg@10, map@100, [true_recall@k...], queries,
      rewatch_targets_skipped, [fresh, age_profile], [sample, [standard_error]]}}: `sample`
      describes a split's sample, and `standard_error` {figure: sd / sqrt(queries)} is there
      when the sample leaves users out. With per_query, (that, {split: per-query DataFrame}),
      whose `query` is always the row in the split's full query set.
    """
    samples = samples or {}
    chosen = {split: getattr(examples, split).take(samples[split].rows) if split in samples
              else getattr(examples, split) for split in splits}
    result: dict[str, dict[str, Any]] = {}
    tables: dict[str, pd.DataFrame] = {}
    truth_tables: dict[str, pd.DataFrame] = {}  # per-query true recall, for standard errors
    for split, queries in chosen.items():
        result[split], tables[split] = evaluate_next_watch(
            functools.partial(score, queries), queries, corpus_ids, ks=ks, per_query=True)
    if world is not None:
        for split, queries in chosen.items():
            truth, truth_table = recall_of_true_top_k(
                functools.partial(score, queries), queries, corpus_ids, world, ks=ks,
                per_query=True)
            truth.pop("queries")
            result[split].update(truth)
            truth_tables[split] = truth_table
    from tfrec.evaluation.freshness import has_upload_times, served_age_figures
    if videos is not None and has_upload_times(videos):
        for split, figures in served_age_figures(score, chosen, corpus_ids, videos, ks).items():
            result[split].update(figures)
    for split, sample in samples.items():
        result[split]["sample"] = sample.describe()
        if not sample.is_all:
            per_query_figures = [tables[split]] + ([truth_tables[split]]
                                                   if split in truth_tables else [])
            result[split]["standard_error"] = {
                name: error for table in per_query_figures
                for name, error in standard_errors(table).items()}
        tables[split]["query"] = sample.rows[tables[split]["query"].to_numpy()]
    return (result, tables) if per_query else result


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
