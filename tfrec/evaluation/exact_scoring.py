"""Exact scoring of queries against the whole corpus, in TensorFlow, in float32 chunks.

Every exact figure of the project goes through here: the next-watch ranks of validation and
test, the top-K of the true-affinity recall and of the age profile, and ScaNN's exact
reference (`exact_top_k`). Scores are made and consumed a chunk of queries at a time, so memory
is bounded by chunk x N float32 cells whatever the number of queries; no full sort is made (a
rank is two counts, a top-K is `tf.math.top_k`).

Exclusions (the videos a user watched before the query) are written into a chunk's scores:
NaN for ranks (NaN compares neither above nor equal to anything, so an excluded video counts
neither as greater nor as tied) and -inf for a top-K (last, and flagged as not valid).

TensorFlow is imported on first use, not with the module: the stage registry imports the
evaluation modules, and a run whose stages are all cached never loads TensorFlow.
"""
import functools
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from tfrec.features.ragged import Ragged

if TYPE_CHECKING:
    from tfrec.tf_keras2 import tf

# callable(start, end) -> [end - start, N] scores of queries[start:end] against the corpus
# (a tf.Tensor, or an array made float32).
ScoreFn = Callable[[int, int], Any]

# Default bound on one chunk: 2^24 cells = 64 MiB of float32 scores.
MAX_CELLS = 1 << 24


def chunk_rows(n_items: int, max_cells: int = MAX_CELLS) -> int:
    """Queries per chunk so that one chunk holds at most `max_cells` scores (at least 1)."""
    return max(1, max_cells // max(n_items, 1))


class Exclusions:
    """Each query's excluded corpus columns, as (row, column) pairs sorted by row.

    Args:
      exclusions: Ragged [Q] of video ids per query (ids outside the corpus are ignored).
      index: pandas Index of the N corpus ids.
    """

    def __init__(self, exclusions: Ragged, index: pd.Index) -> None:
        cols = index.get_indexer(exclusions.values)
        rows = np.repeat(np.arange(len(exclusions)), exclusions.lengths)
        known = cols >= 0
        self.rows, self.cols = rows[known].astype(np.int64), cols[known].astype(np.int64)
        self.starts = np.searchsorted(self.rows, np.arange(len(exclusions) + 1))

    def chunk(self, start: int, end: int, keep_cols: np.ndarray | None = None) -> np.ndarray:
        """[n, 2] int64 (row - start, column) pairs of queries[start:end]; with keep_cols
        ([end - start] column per query), that query's pair at that column is left out."""
        lo, hi = self.starts[start], self.starts[end]
        rows, cols = self.rows[lo:hi] - start, self.cols[lo:hi]
        if keep_cols is not None:
            other = cols != keep_cols[rows]
            rows, cols = rows[other], cols[other]
        return np.stack([rows, cols], axis=1)


def _tf() -> Any:
    from tfrec.tf_keras2 import tf
    return tf


def _scores(score_fn: ScoreFn, start: int, end: int, n_items: int) -> "tf.Tensor":
    tf = _tf()
    scores = score_fn(start, end)
    # An array (a broadcast view included) becomes float32 before TensorFlow sees it: one copy.
    scores = tf.cast(scores, tf.float32) if isinstance(scores, tf.Tensor) \
        else tf.convert_to_tensor(np.asarray(scores, np.float32))
    if tuple(scores.shape) != (end - start, n_items):
        raise ValueError(f"score_fn returned shape {tuple(scores.shape)}, expected "
                         f"{(end - start, n_items)}")
    return scores


def _fill(scores: "tf.Tensor", pairs: np.ndarray, value: float) -> "tf.Tensor":
    """scores with `value` at the (row, column) `pairs` [n, 2]."""
    if not len(pairs):
        return scores
    tf = _tf()
    return tf.tensor_scatter_nd_update(scores, pairs, tf.fill([len(pairs)], value))


@functools.cache
def _greater_and_ties() -> Callable[["tf.Tensor", "tf.Tensor"], tuple["tf.Tensor", "tf.Tensor"]]:
    """tf.function(scores [c, N] float32, targets [c] int64) -> (greater [c], ties [c])."""
    tf = _tf()

    @tf.function(reduce_retracing=True)
    def greater_and_ties(scores: Any, targets: Any) -> tuple[Any, Any]:
        target = tf.gather(scores, targets, batch_dims=1)[:, None]
        greater = tf.reduce_sum(tf.cast(scores > target, tf.int64), axis=1)
        ties = tf.reduce_sum(tf.cast(scores == target, tf.int64), axis=1) - 1
        return greater, ties

    return greater_and_ties


def target_ranks(score_fn: ScoreFn, targets: np.ndarray, exclusions: Exclusions,
                 n_items: int, max_cells: int = MAX_CELLS) -> tuple[np.ndarray, np.ndarray]:
    """(greater, ties) [Q] int64 of each query's target among its non-excluded videos.

    greater counts the eligible videos scored strictly above the target, ties the other
    eligible videos scored equal to it. The target itself is always ranked, even where the
    exclusions hold it (the next-watch metrics never score such a query; the block stays total).

    Args:
      score_fn: callable(start, end) -> [end - start, N] scores.
      targets: [Q] corpus column of each query's target.
      exclusions: the queries' Exclusions; n_items: N.
    """
    step = chunk_rows(n_items, max_cells)
    greater, ties = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
    for start in range(0, len(targets), step):
        end = min(start + step, len(targets))
        scores = _fill(_scores(score_fn, start, end, n_items),
                       exclusions.chunk(start, end, keep_cols=targets[start:end]), np.nan)
        g, t = _greater_and_ties()(scores, _tf().constant(targets[start:end], np.int64))
        greater.append(g.numpy())
        ties.append(t.numpy())
    return np.concatenate(greater), np.concatenate(ties)


def top_k_chunks(score_fn: ScoreFn, n_queries: int, n_items: int, k: int,
                 exclusions: Exclusions | None = None,
                 ineligible: Callable[[int, int], np.ndarray | None] | None = None,
                 max_cells: int = MAX_CELLS
                 ) -> Iterator[tuple[int, int, np.ndarray, np.ndarray]]:
    """Yield (start, end, top [end - start, k] corpus columns best first, valid [.., k] bool)
    over the queries in chunks; excluded or ineligible videos are never ranked above an
    eligible one, and `valid` is False where a row has fewer than k eligible (finite) scores.
    Among equal scores the lower column comes first (tf.math.top_k).

    Args:
      score_fn: callable(start, end) -> [end - start, N] scores; k <= N.
      exclusions: Exclusions of the queries, or None.
      ineligible: callable(start, end) -> [end - start, N] bool mask of more videos not to
        rank (e.g. not yet uploaded), or None.
    """
    tf = _tf()
    step = chunk_rows(n_items, max_cells)
    for start in range(0, n_queries, step):
        end = min(start + step, n_queries)
        scores = _scores(score_fn, start, end, n_items)
        if exclusions is not None:
            scores = _fill(scores, exclusions.chunk(start, end), -np.inf)
        mask = ineligible(start, end) if ineligible is not None else None
        if mask is not None:
            scores = tf.where(mask, tf.constant(-np.inf, tf.float32), scores)
        top = tf.math.top_k(scores, k=k)
        yield start, end, top.indices.numpy().astype(np.int64), \
            np.isfinite(top.values.numpy())


def dot_product_scores(queries: npt.ArrayLike, table: npt.ArrayLike) -> ScoreFn:
    """score_fn(start, end) -> queries[start:end] @ table.T in TensorFlow, float32.

    queries: [Q, d] query vectors; table: [N, d] item vectors.
    """
    tf = _tf()
    q = tf.constant(queries, tf.float32)
    table_t = tf.constant(table, tf.float32)
    return lambda start, end: tf.matmul(q[start:end], table_t, transpose_b=True)


def exact_top_k(queries: npt.ArrayLike, table: npt.ArrayLike, k: int,
                max_cells: int = MAX_CELLS) -> np.ndarray:
    """[Q, k] the exact top-k rows of `table` [N, d] by dot product with each query [Q, d]."""
    n_queries, n_items = len(queries), len(table)  # type: ignore[arg-type]
    parts = [top for _, _, top, _ in top_k_chunks(dot_product_scores(queries, table),
                                                   n_queries, n_items, k, max_cells=max_cells)]
    return np.concatenate(parts) if parts else np.zeros((0, k), np.int64)
