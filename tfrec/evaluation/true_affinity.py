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

import numpy as np
import numpy.typing as npt
import pandas as pd

from tfrec.data.simulator.world import World
from tfrec.evaluation.next_watch import ScoreFn, rewatch_targets
from tfrec.features.example_set import ExampleSet


def world_indices(ids: npt.ArrayLike, prefix: str) -> np.ndarray:
    """Simulator ids ("u12", "v7") -> world indices [n] (int64); -1 for ids of another form."""
    s = pd.Series(np.asarray(ids, dtype=object)).astype(str)
    ok = s.str.startswith(prefix) & s.str[len(prefix):].str.isdigit()
    out = np.full(len(s), -1, dtype=np.int64)
    out[ok.to_numpy()] = s[ok].str[len(prefix):].astype(np.int64).to_numpy()
    return out


def _top_k_mask(scores: np.ndarray, k: int) -> np.ndarray:
    """[q, N] bool: True at each row's k best (finite) scores."""
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    mask = np.zeros(scores.shape, dtype=bool)
    np.put_along_axis(mask, top, True, axis=1)
    return mask & np.isfinite(scores)


def recall_of_true_top_k(score_fn: ScoreFn, queries: ExampleSet, corpus_ids: npt.ArrayLike,
                         world: World, ks: Sequence[int] = (10, 50, 100),
                         max_cells: int = 1 << 23) -> dict[str, float | int]:
    """Mean recall of the true top-K by affinity, for each K in ks.

    Args:
      score_fn: callable(start, end) -> [end - start, N] model scores of queries[start:end]
        against `corpus_ids` (as for `evaluate_next_watch`).
      queries: ExampleSet with user_id [Q], timestamp [Q] (s) and exclusions (Ragged ids).
      corpus_ids: [N] simulator video ids ("v<j>").
      world: the simulator World the events came from.
    Returns:
      dict: true_recall@k for k in ks (means over the scored queries; NaN when none), queries
      (how many were scored) and rewatch_targets_skipped (as `evaluate_next_watch`).
    """
    corpus = world_indices(corpus_ids, "v")
    users = world_indices(queries["user_id"], "u")
    if (corpus < 0).any() or (users < 0).any():
        raise ValueError("recall of the true top-K needs simulator ids (u<i>, v<j>)")
    index = pd.Index(corpus_ids)
    excl = queries["exclusions"]
    excl_cols = index.get_indexer(excl.values)
    excl_rows = np.repeat(np.arange(len(excl)), excl.lengths)
    upload = world.upload[corpus]
    times = np.asarray(queries["timestamp"])
    chunk = max(1, max_cells // max(len(corpus), 1))
    hits: dict[int, list[np.ndarray]] = {k: [] for k in ks}
    for start in range(0, len(users), chunk):
        end = min(start + chunk, len(users))
        ineligible = upload[None, :] > times[start:end, None]
        sel = (excl_rows >= start) & (excl_rows < end) & (excl_cols >= 0)
        ineligible[excl_rows[sel] - start, excl_cols[sel]] = True
        model = np.array(score_fn(start, end), dtype=np.float64)  # a writable copy
        truth = world.affinity_matrix(users[start:end], corpus).astype(np.float64)
        model[ineligible] = -np.inf
        truth[ineligible] = -np.inf
        for k in ks:
            found = (_top_k_mask(model, k) & _top_k_mask(truth, k)).sum(axis=1)
            hits[k].append(found / k)
    scored = ~rewatch_targets(queries)
    found = {k: np.concatenate(hits[k] or [np.zeros(0)])[scored] for k in ks}
    result: dict[str, float | int] = {
        f"true_recall@{k}": float(found[k].mean()) if scored.any() else float("nan") for k in ks}
    result["queries"] = int(scored.sum())
    result["rewatch_targets_skipped"] = int(len(users) - scored.sum())
    return result
