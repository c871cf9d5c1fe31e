"""ScaNN over the video table, tuned against exact search on real user vectors.

ScaNN's own guide (scann/docs/algorithms.md): below ~20k items exact (brute-force) scoring is
best; above, a partitioning tree with about sqrt(n) leaves, asymmetric hashing with 2 dimensions
per block, and reordering of well more than k candidates. Defaults are far from usable at scale
(docs/DESIGN_NOTES.md, "Tuning ScaNN"), so `tune_scann` searches leaves-to-search and reordering
depth until recall@k against exact search reaches the target, and reports what it measured.
"""
import dataclasses
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from tfrec.evaluation.exact_scoring import exact_top_k
from tfrec.tf_keras2 import tf

BRUTE_FORCE_BELOW = 20_000


def scann_ops() -> Any:
    """The ScaNN TF ops module; a clear error if scann is missing or built for another TF."""
    try:
        from scann.scann_ops.py import scann_ops as ops
    except (ImportError, tf.errors.NotFoundError) as err:
        raise RuntimeError(f"ScaNN ops are unavailable ({err}); scann 1.4.2 needs tensorflow "
                           f"2.20, found {tf.__version__}") from err
    return ops


@dataclasses.dataclass(frozen=True)
class ScannSettings:
    """How the index is built and searched. num_leaves = 0 means exact scoring inside ScaNN.

    Args:
      num_leaves: partitions of the tree (about sqrt(n)).
      num_leaves_to_search: partitions searched per query (search time).
      reorder: candidates re-scored exactly after the quantised pass (search time; 0 = none).
      max_reorder: the reordering depth the index is built for (>= reorder).
      training_sample_size: points the tree is trained on.
    """

    num_leaves: int = 0
    num_leaves_to_search: int = 0
    reorder: int = 0
    max_reorder: int = 0
    training_sample_size: int = 250_000

    def search_kwargs(self) -> dict[str, Any]:
        if self.num_leaves == 0:
            return {}
        return {"leaves_to_search": self.num_leaves_to_search,
                "pre_reorder_num_neighbors": self.reorder or None}


def build_searcher(table: np.ndarray, k: int, settings: ScannSettings) -> Any:
    """A ScaNN searcher (TF ops) over `table` [V, d] for dot-product search."""
    builder = scann_ops().builder(np.asarray(table, np.float32), k, "dot_product")
    if settings.num_leaves == 0:
        return builder.score_brute_force().build()
    builder = builder.tree(num_leaves=settings.num_leaves,
                           num_leaves_to_search=settings.num_leaves_to_search,
                           training_sample_size=min(settings.training_sample_size, len(table)))
    builder = builder.score_ah(2, anisotropic_quantization_threshold=0.2)
    if settings.max_reorder:
        builder = builder.reorder(settings.max_reorder)
    return builder.build()


def per_query_recall(approx: np.ndarray, exact: np.ndarray) -> np.ndarray:
    """[Q] fraction of each exact top-k row found in the approximate top-k. [Q, k] each."""
    k = exact.shape[1]
    return np.array([len(set(a[:k]) & set(e)) / k for a, e in zip(approx, exact)])


def recall_against_exact(approx: np.ndarray, exact: np.ndarray) -> float:
    """Mean recall@k of the approximate top-k against the exact top-k. [Q, k] each."""
    return float(np.mean(per_query_recall(approx, exact)))


def search(searcher: Any, queries: np.ndarray, k: int, settings: ScannSettings | None = None
           ) -> np.ndarray:
    """[Q, k] rows from a ScaNN searcher, with the settings' search-time parameters."""
    kwargs = settings.search_kwargs() if settings else {}
    rows, _ = searcher.search_batched_parallel(tf.constant(queries, tf.float32),
                                               final_num_neighbors=k, **kwargs)
    return rows.numpy()


def tune_scann(table: np.ndarray, queries: np.ndarray, k: int = 100, target_recall: float = 0.95,
               log: Callable[[str], object] = print
               ) -> tuple[ScannSettings, dict[str, Any], Any]:
    """The cheapest settings whose recall@k against exact search reaches `target_recall` with
    confidence: the mean over the tuning queries minus two standard errors must reach it, so the
    choice holds on new queries rather than only on the ones it was tuned on.

    The tree is built once (leaves = sqrt(n), trained on up to 250k points, built for the
    deepest reordering tried); leaves searched and reordering depth are search-time parameters,
    tried from cheap to expensive on `queries` (real user vectors).
    Returns:
      (ScannSettings, report dict with the measured recall, build seconds, queries/s, and the
      built searcher: search-time settings do not change the index, so it is the one to serve).
    """
    n = len(table)
    exact = exact_top_k(queries, table, k)
    start = time.perf_counter()
    if n < BRUTE_FORCE_BELOW:
        base = ScannSettings()
        trials = [base]
    else:
        leaves = int(np.sqrt(n))
        # On hard, overlapping data the reordering depth decides recall more than the leaves
        # searched (docs/DESIGN_NOTES.md, "Tuning ScaNN"), so both go well beyond k.
        reorders = sorted({max(k, r) for r in (100, 250, 500, 1000, 2000)} | {2 * k, 5 * k})
        base = ScannSettings(leaves, max(1, leaves // 20), reorders[-1], reorders[-1])
        trials = [dataclasses.replace(base, num_leaves_to_search=max(1, int(leaves * frac)),
                                      reorder=reorder)
                  for frac in (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.35, 0.5)
                  for reorder in reorders]
    searcher = build_searcher(table, k, base)
    build_s = time.perf_counter() - start
    search(searcher, queries[:100], k, trials[0])  # warm-up, so the first trial is timed fairly
    best: tuple[ScannSettings, float, float] | None = None
    most_accurate: tuple[ScannSettings, float, float] | None = None
    for settings in trials:
        start = time.perf_counter()
        approx = search(searcher, queries, k, settings)
        qps = len(queries) / (time.perf_counter() - start)
        recalls = per_query_recall(approx, exact)
        recall = float(recalls.mean())
        lower = recall - 2 * float(recalls.std(ddof=1)) / np.sqrt(len(recalls)) \
            if len(recalls) > 1 else recall
        log(f"  scann leaves {settings.num_leaves_to_search}/{settings.num_leaves}, reorder "
            f"{settings.reorder}: recall@{k} {recall:.4f} (lower bound {lower:.4f}), "
            f"{qps:.0f} q/s")
        if lower >= target_recall and (best is None or qps > best[2]):
            best = (settings, recall, qps)
        if most_accurate is None or recall > most_accurate[1]:
            most_accurate = (settings, recall, qps)
    if best is None:
        log(f"  scann: no setting reached recall {target_recall}; using the most accurate")
        best = most_accurate
    assert best is not None, "trials is never empty"
    settings, recall, qps = best
    return settings, {"settings": dataclasses.asdict(settings), f"recall@{k}": recall, "k": k,
                      "build_seconds": build_s, "queries_per_second": qps,
                      "target_recall": target_recall, "corpus": n, "queries": len(queries)}, \
        searcher
