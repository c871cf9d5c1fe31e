"""Ranking evaluation (docs/PROTOCOL.md): the weighted per-user loss, click AUC, calibration.

A page is one (user_id, timestamp) of the impressions: the videos shown together. All functions
are vectorised (sorts and binary searches), exact with ties.
"""
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from tfrec.evaluation.bootstrap import paired_bootstrap
from tfrec.features.example_set import ExampleSet


def _dense_ranks(scores: npt.ArrayLike) -> np.ndarray:
    """[n] int64 rank of each score among the distinct scores (equal scores, equal rank)."""
    _, inverse = np.unique(np.asarray(scores, dtype=np.float64), return_inverse=True)
    return inverse.astype(np.int64).reshape(-1)


def page_ids(user_ids: npt.ArrayLike, timestamps: npt.ArrayLike) -> np.ndarray:
    """[n] int64 page of each impression: one per distinct (user_id, timestamp)."""
    users, _ = pd.factorize(np.asarray(user_ids))
    times, _ = pd.factorize(np.asarray(timestamps))
    codes, _ = pd.factorize(users.astype(np.int64) * (int(times.max(initial=0)) + 1) + times)
    return codes.astype(np.int64)


def page_loss_sums(pages: npt.ArrayLike, clicked: npt.ArrayLike, watch_time: npt.ArrayLike,
                   scores: npt.ArrayLike) -> dict[str, np.ndarray]:
    """Per-page parts of the weighted per-user loss (see `weighted_per_user_loss`).

    Args: as `weighted_per_user_loss`; pages are ids in [0, P) (`page_ids`).
    Returns:
      dict of [P] arrays, P = max(pages) + 1: mispredicted (watch time of the mispredicted
      pairs, ties half), total (watch time over all pairs), pairs (int64 count).
    """
    pages = np.asarray(pages, np.int64)
    clicked = np.asarray(clicked).astype(bool)
    watch_time = np.asarray(watch_time, np.float64)
    ranks = _dense_ranks(scores)
    stride = int(ranks.max(initial=0)) + 2
    neg_keys = np.sort(pages[~clicked] * stride + ranks[~clicked])
    p, r, w = pages[clicked], ranks[clicked], watch_time[clicked]
    below_page = np.searchsorted(neg_keys, p * stride, side="left")
    page_end = np.searchsorted(neg_keys, (p + 1) * stride, side="left")
    lower = np.searchsorted(neg_keys, p * stride + r, side="left")
    upper = np.searchsorted(neg_keys, p * stride + r, side="right")
    negatives = page_end - below_page
    mispredicted = (page_end - upper) + 0.5 * (upper - lower)
    size = int(pages.max(initial=-1)) + 1
    return {"mispredicted": np.bincount(p, w * mispredicted, minlength=size),
            "total": np.bincount(p, w * negatives, minlength=size),
            "pairs": np.bincount(p, negatives, minlength=size).astype(np.int64)}


def weighted_per_user_loss(pages: npt.ArrayLike, clicked: npt.ArrayLike,
                           watch_time: npt.ArrayLike, scores: npt.ArrayLike
                           ) -> dict[str, float | int]:
    """The paper's ranking loss: mispredicted watch time / total watch time over page pairs.

    Every (clicked, not clicked) pair of impressions on one page is a pair; it is mispredicted
    when the not-clicked one scores higher, and counts half when they tie. Each pair weighs the
    clicked impression's watch time. Lower is better.

    Args:
      pages: [n] page id of each impression (see `page_ids`).
      clicked: [n] 0/1.
      watch_time: [n] seconds (only clicked rows matter).
      scores: [n] model scores (higher = ranked first).
    Returns:
      dict: weighted_per_user_loss (NaN when no pair has watch time), pairs, pages_with_pairs.
    """
    sums = page_loss_sums(pages, clicked, watch_time, scores)
    total = float(sums["total"].sum())
    return {"weighted_per_user_loss": float(sums["mispredicted"].sum() / total) if total > 0
            else float("nan"),
            "pairs": int(sums["pairs"].sum()),
            "pages_with_pairs": int((sums["pairs"] > 0).sum())}


def compare_orders(examples: ExampleSet, scores: npt.ArrayLike, baseline_scores: npt.ArrayLike,
                   seed: int = 0) -> dict[str, Any]:
    """Weighted per-user loss of `baseline_scores` minus that of `scores` on the same pages
    (positive: `scores` order the pages better), with its paired-bootstrap 95% interval over
    pages (the ratio of sums recomputed on every resample).

    Args:
      examples: ranking ExampleSet (user_id, timestamp, clicked, watch_time).
      scores, baseline_scores: [n] two scorings of its impressions.
    Returns:
      {"difference", "ci95": [lo, hi], "pages"} (pages: how many have a pair).
    """
    pages = page_ids(examples["user_id"], examples["timestamp"])
    ours, theirs = (page_loss_sums(pages, examples["clicked"], examples["watch_time"], s)
                    for s in (scores, baseline_scores))
    has = ours["pairs"] > 0  # pages without a pair add nothing to either sum
    out = paired_bootstrap(theirs["mispredicted"][has], ours["mispredicted"][has],
                           totals=ours["total"][has], seed=seed)
    return {**out, "pages": int(has.sum())}


def click_auc(clicked: npt.ArrayLike, scores: npt.ArrayLike) -> float:
    """AUC of the scores for clicks (ties count half), unweighted; NaN with one class only."""
    clicked = np.asarray(clicked).astype(bool)
    n_pos, n_neg = int(clicked.sum()), int((~clicked).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = pd.Series(np.asarray(scores, np.float64)).rank(method="average").to_numpy()
    return float((ranks[clicked].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def calibration(predicted: npt.ArrayLike, actual: npt.ArrayLike, bins: int = 10
                ) -> dict[str, Any]:
    """How well predicted expected watch times match the true ones.

    Args:
      predicted: [n] predicted expected watch time (e.g. exp(logit)), seconds.
      actual: [n] true expected watch time (e.g. the simulator's), seconds.
      bins: quantile bins of `predicted` for the table (deciles by default).
    Returns:
      dict: slope, intercept (least squares of actual on predicted: calibrated = slope 1,
      intercept 0), r2 (of that fit), mean_predicted, mean_actual, and by_bin: a list of
      {bin, count, mean_predicted, mean_actual} (for a reliability plot).
    """
    x = np.asarray(predicted, np.float64)
    y = np.asarray(actual, np.float64)
    if len(x) < 2 or np.var(x) == 0:
        raise ValueError("calibration needs at least two different predictions")
    slope, intercept = np.polyfit(x, y, 1)
    residual = y - (slope * x + intercept)
    total = np.sum((y - y.mean()) ** 2)
    bin_of = pd.qcut(pd.Series(x).rank(method="first"), bins, labels=False)
    table = pd.DataFrame({"bin": bin_of, "p": x, "a": y}).groupby("bin").agg(
        count=("p", "size"), mean_predicted=("p", "mean"), mean_actual=("a", "mean"))
    return {"slope": float(slope), "intercept": float(intercept),
            "r2": float(1 - np.sum(residual ** 2) / total) if total > 0 else float("nan"),
            "mean_predicted": float(x.mean()), "mean_actual": float(y.mean()),
            "by_bin": [{"bin": int(b), "count": int(row["count"]),
                        "mean_predicted": float(row["mean_predicted"]),
                        "mean_actual": float(row["mean_actual"])}
                       for b, row in table.iterrows()]}


def evaluate_ranking(examples: ExampleSet, scores: npt.ArrayLike,
                     expected_watch_time: npt.ArrayLike | None = None,
                     true_expected_column: str | None = None) -> dict[str, Any]:
    """All ranking metrics of one example set.

    Args:
      examples: ranking ExampleSet (user_id, timestamp, clicked, watch_time, ...).
      scores: [n] the ranking score (the weighted LR's expected watch time, or a baseline's).
      expected_watch_time: [n] predicted expected watch time, for calibration (default scores).
      true_expected_column: a column of `examples` with the true expected watch time; None
        skips calibration.
    Returns:
      dict: weighted_per_user_loss, pairs, pages_with_pairs, click_auc, impressions and, with a
      true column, calibration.
    """
    pages = page_ids(examples["user_id"], examples["timestamp"])
    out: dict[str, Any] = weighted_per_user_loss(pages, examples["clicked"],
                                                 examples["watch_time"], scores)
    out["click_auc"] = click_auc(examples["clicked"], scores)
    out["impressions"] = int(len(pages))
    if true_expected_column is not None:
        predicted = scores if expected_watch_time is None else expected_watch_time
        out["calibration"] = calibration(predicted, examples[true_expected_column])
    return out
