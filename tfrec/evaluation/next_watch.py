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
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from tfrec.features.example_set import ExampleSet
from tfrec.features.ragged import Ragged

# callable(start, end) -> [end - start, N] scores of queries[start:end] against the corpus.
ScoreFn = Callable[[int, int], npt.ArrayLike]

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


def target_ranks(scores: np.ndarray, targets: np.ndarray, excluded: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray]:
    """(greater, ties) of each target among the non-excluded videos.

    The target itself is ranked even where `excluded` marks it (evaluate_next_watch never
    scores such a query; the building block stays total).

    Args:
      scores: [Q, N] float scores over the corpus.
      targets: [Q] corpus index of each target.
      excluded: [Q, N] bool, True for videos that may not be recommended.
    """
    rows = np.arange(len(targets))
    excluded = excluded.copy()
    excluded[rows, targets] = False
    target_scores = scores[rows, targets][:, None]
    eligible = ~excluded
    greater = ((scores > target_scores) & eligible).sum(axis=1)
    ties = ((scores == target_scores) & eligible).sum(axis=1) - 1
    return greater, ties


def scored_chunks(score_fn: ScoreFn, queries: ExampleSet, index: pd.Index,
                  max_cells: int = 1 << 24
                  ) -> Iterator[tuple[int, int, np.ndarray, np.ndarray]]:
    """Yield (start, end, scores [end - start, N] float64, excluded [end - start, N] bool) over
    `queries` in chunks of at most `max_cells` cells; `excluded` marks each query's exclusions.

    Args:
      score_fn: callable(start, end) -> scores of queries[start:end] against the corpus.
      queries: ExampleSet with `exclusions` Ragged (video ids).
      index: pandas Index of the N corpus ids.
    """
    exclusions: Ragged = queries["exclusions"]
    excl_cols = index.get_indexer(exclusions.values)
    excl_rows = np.repeat(np.arange(len(exclusions)), exclusions.lengths)
    known = excl_cols >= 0
    excl_cols, excl_rows = excl_cols[known], excl_rows[known]
    n_items = len(index)
    chunk = max(1, max_cells // max(n_items, 1))
    for start in range(0, len(queries["label"]), chunk):
        end = min(start + chunk, len(queries["label"]))
        scores = np.asarray(score_fn(start, end), dtype=np.float64)
        if scores.shape != (end - start, n_items):
            raise ValueError(f"score_fn returned shape {scores.shape}, expected "
                             f"{(end - start, n_items)}")
        excluded = np.zeros_like(scores, dtype=bool)
        sel = (excl_rows >= start) & (excl_rows < end)
        excluded[excl_rows[sel] - start, excl_cols[sel]] = True
        yield start, end, scores, excluded


def evaluate_next_watch(score_fn: ScoreFn, queries: ExampleSet, corpus_ids: npt.ArrayLike,
                        ks: Sequence[int] = DEFAULT_KS, max_cells: int = 1 << 24,
                        per_query: bool = False) -> Any:
    """Mean P1 metrics of a scorer over held-out next-watch queries (re-watch targets skipped).

    Args:
      score_fn: callable(start, end) -> [end - start, N] scores of queries[start:end] against
        `corpus_ids` (higher = recommend first). Called on every row, skipped ones included, so
        its row numbers are those of `queries`.
      queries: ExampleSet with `label` [Q] and `exclusions` Ragged (video ids watched before).
      corpus_ids: [N] video ids, unique.
      max_cells: bound on the size of one score chunk (rows x N), to bound memory.
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
    parts = [expected_rank_metrics(*target_ranks(scores, targets[start:end], excluded), ks)
             for start, end, scores, excluded in scored_chunks(score_fn, queries, index,
                                                               max_cells)]
    names = expected_rank_metrics(np.zeros(0), np.zeros(0), ks)
    scored = ~rewatch_targets(queries)
    table = pd.DataFrame({"query": np.flatnonzero(scored).astype(np.int64), **{
        name: np.concatenate([p[name] for p in parts] or [np.zeros(0)])[scored]
        for name in names}})
    metrics = {name: float(table[name].mean()) if len(table) else float("nan")
               for name in names}
    metrics["queries"] = int(len(table))
    metrics["rewatch_targets_skipped"] = int(len(targets) - len(table))
    return (metrics, table) if per_query else metrics
