"""ScaNN over the video table, tuned against exact search on real user vectors.

ScaNN's own guide (scann/docs/algorithms.md): below ~20k items exact (brute-force) scoring is
best; above, a partitioning tree with about sqrt(n) leaves, asymmetric hashing with 2 dimensions
per block, and reordering of well more than k candidates. Defaults are far from usable at scale
(FIELD_NOTES #16), so `tune_scann` searches leaves-to-search and reordering depth until recall@k
against exact search reaches the target, and reports what it measured.
"""
import dataclasses
import time

import numpy as np

from tfrec.keras_check import require_keras2

tf = require_keras2()

BRUTE_FORCE_BELOW = 20_000


def scann_ops():
    """The ScaNN TF ops module; a clear error if scann is missing or built for another TF."""
    try:
        from scann.scann_ops.py import scann_ops as ops
    except (ImportError, tf.errors.NotFoundError) as err:
        raise RuntimeError(f"ScaNN ops are unavailable ({err}); scann 1.4.2 needs tensorflow "
                           f"2.20, found {tf.__version__}") from err
    return ops


@dataclasses.dataclass(frozen=True)
class ScannSettings:
    """num_leaves = 0 means exact (brute-force) scoring inside ScaNN."""

    num_leaves: int = 0
    num_leaves_to_search: int = 0
    reorder: int = 0
    training_sample_size: int = 100_000


def build_searcher(table, k, settings):
    """A ScaNN searcher (TF ops) over `table` [V, d] for dot-product search."""
    builder = scann_ops().builder(np.asarray(table, np.float32), k, "dot_product")
    if settings.num_leaves == 0:
        return builder.score_brute_force().build()
    builder = builder.tree(num_leaves=settings.num_leaves,
                           num_leaves_to_search=settings.num_leaves_to_search,
                           training_sample_size=min(settings.training_sample_size, len(table)))
    builder = builder.score_ah(2, anisotropic_quantization_threshold=0.2)
    if settings.reorder:
        builder = builder.reorder(settings.reorder)
    return builder.build()


def exact_top_k(queries, table, k, chunk=1024):
    """[Q, k] exact top-k rows by dot product (TF matmul + top_k, in query chunks)."""
    table = tf.constant(table, tf.float32)
    out = []
    for start in range(0, len(queries), chunk):
        scores = tf.matmul(tf.constant(queries[start:start + chunk], tf.float32), table,
                           transpose_b=True)
        out.append(tf.math.top_k(scores, k=k).indices.numpy())
    return np.concatenate(out)


def recall_against_exact(approx, exact):
    """Mean fraction of each exact top-k row found in the approximate top-k. [Q, k] each."""
    k = exact.shape[1]
    hits = [len(set(a[:k]) & set(e)) for a, e in zip(approx, exact)]
    return float(np.mean(hits) / k)


def search(searcher, queries, k):
    rows, _ = searcher.search_batched_parallel(tf.constant(queries, tf.float32),
                                               final_num_neighbors=k)
    return rows.numpy()


def tune_scann(table, queries, k=100, target_recall=0.95, log=print):
    """Settings that reach `target_recall` of recall@k against exact search on `queries`.

    Returns:
      (ScannSettings, report dict with measured recall, build seconds, queries/s).
    """
    n = len(table)
    exact = exact_top_k(queries, table, k)
    if n < BRUTE_FORCE_BELOW:
        candidates = [ScannSettings()]
    else:
        leaves = int(np.sqrt(n))
        candidates = [ScannSettings(leaves, max(1, int(leaves * frac)), reorder)
                      for reorder in (2 * k, 5 * k, 10 * k)
                      for frac in (0.02, 0.05, 0.1, 0.2)]
    report = None
    for settings in candidates:
        start = time.perf_counter()
        searcher = build_searcher(table, k, settings)
        build_s = time.perf_counter() - start
        start = time.perf_counter()
        approx = search(searcher, queries, k)
        qps = len(queries) / (time.perf_counter() - start)
        recall = recall_against_exact(approx, exact)
        report = {"settings": dataclasses.asdict(settings), "recall_at_k": recall, "k": k,
                  "build_seconds": build_s, "queries_per_second": qps,
                  "target_recall": target_recall, "corpus": n, "queries": len(queries)}
        log(f"  scann {dataclasses.asdict(settings)}: recall@{k} {recall:.4f}, {qps:.0f} q/s")
        if recall >= target_recall:
            return settings, report
    log(f"  scann: no setting reached recall {target_recall}; using the last tried")
    return settings, report
