"""Recall of the true top-K by affinity (docs/PROTOCOL.md, P2): only a simulator can measure it.

For a held-out query (user u at time t) the truth is the K videos of highest true affinity among
those uploaded by t that u has not watched before t; the model's list is its top K over the same
eligible videos. Recall@K = |model top-K ∩ true top-K| / K. Both lists are restricted to uploaded
videos because a serving system knows what exists; the next-watch metrics (next_watch.py) are
computed exactly as on MovieLens, without that restriction.

The queries are those the next-watch metrics score: a query whose target is a re-watch is skipped
here too. The target plays no part in this recall, but one query set per split keeps one
`queries` count beside all of a split's figures and lets them be compared query by query.
"""
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from tfrec.data.simulator.world import World
from tfrec.evaluation.exact_scoring import (MAX_CELLS, Exclusions, ScoreFn, chunk_rows,
                                           top_k_chunks)
from tfrec.evaluation.next_watch import rewatch_targets
from tfrec.features.example_set import ExampleSet


def world_indices(ids: npt.ArrayLike, prefix: str) -> np.ndarray:
    """Simulator ids ("u12", "v7") -> world indices [n] (int64); -1 for ids of another form."""
    s = pd.Series(np.asarray(ids, dtype=object)).astype(str)
    ok = s.str.startswith(prefix) & s.str[len(prefix):].str.isdigit()
    out = np.full(len(s), -1, dtype=np.int64)
    out[ok.to_numpy()] = s[ok].str[len(prefix):].astype(np.int64).to_numpy()
    return out


def recall_of_true_top_k(score_fn: ScoreFn, queries: ExampleSet, corpus_ids: npt.ArrayLike,
                         world: World, ks: Sequence[int] = (10, 50, 100),
                         max_cells: int = MAX_CELLS, per_query: bool = False) -> Any:
    """Mean recall of the true top-K by affinity, for each K in ks.

    Both top-K lists come from one `tf.math.top_k` at the largest K per chunk of queries
    (`tfrec.evaluation.exact_scoring`, float32, bounded memory), the smaller K being its
    prefixes; among equal scores the lower corpus column is taken.

    Args:
      score_fn: callable(start, end) -> [end - start, N] model scores of queries[start:end]
        against `corpus_ids` (as for `evaluate_next_watch`).
      queries: ExampleSet with user_id [Q], timestamp [Q] (s) and exclusions (Ragged ids).
      corpus_ids: [N] simulator video ids ("v<j>").
      world: the simulator World the events came from.
      max_cells: bound on one chunk of scores (queries x N).
      per_query: also return each scored query's figures.
    Returns:
      dict: true_recall@k for k in ks (means over the scored queries; NaN when none), queries
      (how many were scored) and rewatch_targets_skipped (as `evaluate_next_watch`); with
      per_query, (that dict, DataFrame: `query` (row in `queries`) and true_recall@k columns).
    """
    corpus = world_indices(corpus_ids, "v")
    users = world_indices(queries["user_id"], "u")
    if (corpus < 0).any() or (users < 0).any():
        raise ValueError("recall of the true top-K needs simulator ids (u<i>, v<j>)")
    exclusions = Exclusions(queries["exclusions"], pd.Index(corpus_ids))
    upload = world.upload[corpus]
    times = np.asarray(queries["timestamp"])
    n, q = len(corpus), len(users)
    top = min(max(ks), n)

    def not_uploaded(start: int, end: int) -> np.ndarray:
        return upload[None, :] > times[start:end, None]

    def truth(start: int, end: int) -> np.ndarray:
        return world.affinity_matrix(users[start:end], corpus)

    chunks = zip(top_k_chunks(score_fn, q, n, top, exclusions, not_uploaded, max_cells),
                 top_k_chunks(truth, q, n, top, exclusions, not_uploaded, max_cells))
    # Each video's place in a chunk's true list (`top` = not in it), reset after each chunk.
    place = np.full((chunk_rows(n, max_cells), n), top, dtype=np.int32)
    hits: dict[int, list[np.ndarray]] = {k: [] for k in ks}
    for (start, end, model_top, model_ok), (_, _, true_top, true_ok) in chunks:
        rows = np.arange(end - start)[:, None]
        place[rows, true_top] = np.where(true_ok, np.arange(top, dtype=np.int32), top)
        picked = np.where(model_ok, place[rows, model_top], top)  # [rows, top]
        place[rows, true_top] = top
        for k in ks:
            hits[k].append((picked[:, :k] < k).sum(axis=1) / k)
    scored = ~rewatch_targets(queries)
    found = {k: np.concatenate(hits[k] or [np.zeros(0)])[scored] for k in ks}
    result: dict[str, float | int] = {
        f"true_recall@{k}": float(found[k].mean()) if scored.any() else float("nan") for k in ks}
    result["queries"] = int(scored.sum())
    result["rewatch_targets_skipped"] = int(len(users) - scored.sum())
    if not per_query:
        return result
    return result, pd.DataFrame({"query": np.flatnonzero(scored).astype(np.int64),
                                 **{f"true_recall@{k}": found[k] for k in ks}})
