"""P1 next-watch evaluation with full ranking (docs/PROTOCOL.md).

Every query has one target. All corpus videos are scored; the videos the user watched before the
target are excluded. A query whose target is itself one of those videos (a re-watch) is not
scored, and is counted in `rewatch_targets_skipped`: serving never recommends a watched video, and
keeping the target eligible while every other watched video is excluded would hand it away (a
"boost what was watched" scorer would win). With one target, Recall@K is the hit rate, and MAP@100
is MRR@100 (the paper's holdout MAP).

Ties are scored neutrally and exactly: when e other videos score the same as the target and g score
higher, the target's 0-based rank is taken as uniform on {g, ..., g + e}, and every metric is its
expectation under that uniform tie-break. A popularity baseline, with many equal counts, would
otherwise be flattered or punished by whatever order the ties happen to be in.
"""
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from tfrec.evaluation.exact_scoring import MAX_CELLS, Exclusions, ScoreFn, target_ranks
from tfrec.features.example_set import ExampleSet
from tfrec.features.ragged import Ragged

DEFAULT_KS = (10, 50, 100)
NDCG_K = 10
MAP_K = 100
# The counts a result carries beside its figures (means over queries).
COUNTS = ("queries", "rewatch_targets_skipped")


def _window_sum(gains: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """sum(gains[p] for p in lo..hi), gains padded with zeros past its end. lo, hi: [Q] int."""
    cum = np.concatenate([[0.0], np.cumsum(gains)])
    clip = lambda x: np.minimum(x, len(gains))  # noqa: E731
    return cum[clip(hi + 1)] - cum[clip(lo)]


def expected_rank_metrics(greater: npt.ArrayLike, ties: npt.ArrayLike,
                          ks: Sequence[int] = DEFAULT_KS) -> dict[str, np.ndarray]:
    """Per-query metrics when the target's rank is uniform on {greater, ..., greater + ties}.

    Args:
      greater: [Q] number of eligible videos scored strictly above the target.
      ties: [Q] number of other eligible videos scored equal to the target.
    Returns:
      dict of [Q] float64 arrays: recall@k for k in ks, ndcg@10, map@100.
    """
    lo = np.asarray(greater, dtype=np.int64)
    n = np.asarray(ties, dtype=np.int64) + 1
    hi = lo + n - 1
    out = {f"recall@{k}": np.clip(k - lo, 0, n) / n for k in ks}
    out[f"ndcg@{NDCG_K}"] = _window_sum(1.0 / np.log2(np.arange(NDCG_K) + 2.0), lo, hi) / n
    out[f"map@{MAP_K}"] = _window_sum(1.0 / (np.arange(MAP_K) + 1.0), lo, hi) / n
    return out


def rewatch_targets(queries: ExampleSet) -> np.ndarray:
    """[Q] bool: True where a query's target is in its exclusions (a re-watch: not scored).

    queries: ExampleSet with `label` [Q] and `exclusions` Ragged (video ids watched before).
    """
    exclusions: Ragged = queries["exclusions"]
    labels = np.asarray(queries["label"], dtype=object)
    rows = np.repeat(np.arange(len(exclusions)), exclusions.lengths)
    same = np.asarray(exclusions.values, dtype=object) == labels[rows]
    return np.bincount(rows[same], minlength=len(labels)) > 0


def evaluate_next_watch(score_fn: ScoreFn, queries: ExampleSet, corpus_ids: npt.ArrayLike,
                        ks: Sequence[int] = DEFAULT_KS, max_cells: int = MAX_CELLS,
                        per_query: bool = False) -> Any:
    """Mean P1 metrics of a scorer over held-out next-watch queries (re-watch targets skipped).

    Args:
      score_fn: callable(start, end) -> [end - start, N] scores of queries[start:end] against
        `corpus_ids` (higher = recommend first). Called on every row, skipped ones included, so
        its row numbers are those of `queries`.
      queries: ExampleSet with `label` [Q] and `exclusions` Ragged (video ids watched before).
      corpus_ids: [N] video ids, unique.
      max_cells: bound on the size of one float32 score chunk (rows x N), to bound memory
        (`tfrec.evaluation.exact_scoring`, where the ranks are counted in TensorFlow).
      per_query: also return each scored query's figures.
    Returns:
      dict: recall@k..., ndcg@10, map@100 (means over the scored queries; NaN when none),
      queries (how many were scored) and rewatch_targets_skipped (Q - queries).
      With per_query, (that dict, DataFrame [queries rows]: `query` (row in `queries`, int64)
      and one float64 column per figure), for paired comparisons over the same queries.
    Raises:
      ValueError: a target is not in the corpus, or the corpus has duplicate ids.
    """
    index = pd.Index(corpus_ids)
    if not index.is_unique:
        raise ValueError("corpus_ids has duplicate ids")
    targets = index.get_indexer(queries["label"])
    if (targets < 0).any():
        missing = queries["label"][targets < 0][:5]
        raise ValueError(f"{int((targets < 0).sum())} target(s) not in the corpus, e.g. {missing}")
    figures = expected_rank_metrics(*target_ranks(
        score_fn, targets, Exclusions(queries["exclusions"], index), len(index), max_cells), ks)
    scored = ~rewatch_targets(queries)
    table = pd.DataFrame({"query": np.flatnonzero(scored).astype(np.int64),
                          **{name: values[scored] for name, values in figures.items()}})
    metrics = {name: float(table[name].mean()) if len(table) else float("nan")
               for name in figures}
    metrics["queries"] = int(len(table))
    metrics["rewatch_targets_skipped"] = int(len(targets) - len(table))
    return (metrics, table) if per_query else metrics
