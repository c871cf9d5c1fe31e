"""Paired bootstrap over queries (or pages): the 95% interval of a difference between two systems
measured on the same units.

Units are drawn with replacement, the same draw for both systems (so what the two have in common,
an easy or a hard query, cancels), 1,000 times from a fixed seed; the interval is the 2.5th and
97.5th percentiles of the resampled differences.
"""
from typing import Any

import numpy as np
import numpy.typing as npt

RESAMPLES = 1000
# Resamples drawn at once: bounds the index matrix (rows x units) to about 32 MB.
_CELLS = 1 << 22


def paired_bootstrap(a: npt.ArrayLike, b: npt.ArrayLike, totals: npt.ArrayLike | None = None,
                     resamples: int = RESAMPLES, seed: int = 0) -> dict[str, Any]:
    """Difference of system A minus system B, with its paired-bootstrap 95% percentile interval.

    Args:
      a, b: [n] per-unit values of A and B on the same units (a per-query metric; or, with
        `totals`, a per-page numerator such as the mispredicted watch time).
      totals: None for a difference of means; else [n] per-unit denominators shared by both
        systems (a page's total watch time over its pairs), for a ratio of sums
        sum(a) / sum(totals) - sum(b) / sum(totals), recomputed on every resample.
      resamples: draws; each is `rng.integers(0, n, n)` of `np.random.default_rng(seed)`, in order.
    Returns:
      {"difference": the statistic on all units, "ci95": [lo, hi]} (NaN without units, or
      where a resample's totals sum to zero).
    """
    d = np.asarray(a, np.float64) - np.asarray(b, np.float64)
    den = np.ones_like(d) if totals is None else np.asarray(totals, np.float64)
    if d.shape != den.shape or d.ndim != 1:
        raise ValueError(f"a, b and totals must be [n] arrays of one length, got {d.shape}, "
                         f"{den.shape}")
    n = len(d)
    if n == 0:
        return {"difference": float("nan"), "ci95": [float("nan"), float("nan")]}
    rng = np.random.default_rng(seed)
    rows = max(1, _CELLS // n)
    stats = []
    for start in range(0, resamples, rows):
        idx = rng.integers(0, n, size=(min(rows, resamples - start), n))
        with np.errstate(divide="ignore", invalid="ignore"):
            stats.append(d[idx].sum(axis=1) / den[idx].sum(axis=1))
    lo, hi = np.percentile(np.concatenate(stats), [2.5, 97.5])
    with np.errstate(divide="ignore", invalid="ignore"):
        difference = d.sum() / den.sum()
    return {"difference": float(difference), "ci95": [float(lo), float(hi)]}
