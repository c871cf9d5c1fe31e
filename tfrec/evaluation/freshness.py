"""What serving sees of video age (docs/PROTOCOL.md, P3): the fresh slice and the age profile.

Both need the videos' upload times (the simulator logs them), and are measured on the same
queries as the next-watch metrics (re-watch targets skipped):

  fresh slice   the next-watch metrics over the queries whose target was uploaded at most
                `FRESH_DAYS` before the query;
  age profile   for buckets of video age at query time (days since upload), the share of the
                top-100 slots against the share of actual targets: the paper's Figure 4 asks
                whether a model recommends fresh videos as often as they are watched.
"""
import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from tfrec.evaluation.exact_scoring import Exclusions, ScoreFn, top_k_chunks
from tfrec.evaluation.next_watch import evaluate_next_watch, rewatch_targets
from tfrec.features.example_set import ExampleSet

DAY = 86_400
FRESH_DAYS = 7
PROFILE_K = 100
# Bucket edges in days since upload; a video "uploaded" after the query sorts before the first.
AGE_EDGES_DAYS = (0, 1, 2, 4, 7, 14, 28, 56)


def bucket_names(edges: Sequence[float] = AGE_EDGES_DAYS) -> list[str]:
    """["not yet uploaded", "0-1d", ..., ">56d"]: the age-profile buckets, in order."""
    inner = [f"{a}-{b}d" for a, b in zip(edges[:-1], edges[1:])]
    return ["not yet uploaded", *inner, f">{edges[-1]}d"]


def age_buckets(age_seconds: npt.ArrayLike, edges: Sequence[float] = AGE_EDGES_DAYS
                ) -> np.ndarray:
    """[n] int bucket index of each age (s): 0 for negative ages, then one per edge interval."""
    return np.searchsorted(np.asarray(edges, np.float64) * DAY, np.asarray(age_seconds),
                           side="right")


def upload_times_of(videos: pd.DataFrame, ids: npt.ArrayLike | pd.Index) -> np.ndarray:
    """[len(ids)] float64 upload time (s) of each id (NaN where unknown)."""
    table = videos.set_index("video_id")["upload_timestamp"]
    return table.reindex(pd.Index(ids)).to_numpy(dtype=np.float64)


def fresh_targets(queries: ExampleSet, videos: pd.DataFrame, fresh_days: float = FRESH_DAYS
                  ) -> np.ndarray:
    """[Q] bool: the query's target was uploaded in the `fresh_days` before the query time."""
    uploaded = upload_times_of(videos, queries["label"])
    age = np.asarray(queries["timestamp"], np.float64) - uploaded
    return (age >= 0) & (age <= fresh_days * DAY)


def age_profile(score_fn: ScoreFn, queries: ExampleSet, corpus_ids: npt.ArrayLike,
                videos: pd.DataFrame, k: int = PROFILE_K,
                edges: Sequence[float] = AGE_EDGES_DAYS) -> dict[str, Any]:
    """Share of the top-k slots vs share of targets per video-age bucket.

    Args:
      score_fn: callable(start, end) -> [end - start, N] scores of queries[start:end].
      queries: ExampleSet with label, timestamp, exclusions.
      corpus_ids: [N] video ids; videos: the videos table (video_id, upload_timestamp).
    Returns:
      {"buckets": names, "recommended_share": [B], "target_share": [B], "queries": Q scored}.
    """
    index = pd.Index(corpus_ids)
    uploaded = upload_times_of(videos, index)
    scored = ~rewatch_targets(queries)
    times = np.asarray(queries["timestamp"], np.float64)
    counts = np.zeros(len(edges) + 1)
    k = min(k, len(index))
    exclusions = Exclusions(queries["exclusions"], index)
    for start, end, top, _ in top_k_chunks(score_fn, len(times), len(index), k, exclusions):
        keep = scored[start:end]
        ages = times[start:end][keep][:, None] - uploaded[top[keep]]
        counts += np.bincount(age_buckets(ages[np.isfinite(ages)], edges),
                              minlength=len(edges) + 1)
    target_age = times[scored] - upload_times_of(videos, queries["label"][scored])
    targets = np.bincount(age_buckets(target_age[np.isfinite(target_age)], edges),
                          minlength=len(edges) + 1)
    share = lambda c: (c / max(c.sum(), 1)).round(5).tolist()  # noqa: E731
    return {"buckets": bucket_names(edges), "recommended_share": share(counts),
            "target_share": share(targets.astype(np.float64)), "queries": int(scored.sum())}


def served_age_figures(score: Callable[[ExampleSet, int, int], npt.ArrayLike],
                       queries_by_split: Mapping[str, ExampleSet],
                       corpus_ids: npt.ArrayLike, videos: pd.DataFrame, ks: Sequence[int]
                       ) -> dict[str, dict[str, Any]]:
    """{split: {"fresh": next-watch metrics on the fresh slice, "age_profile": ...}}.

    score: callable(queries, start, end) -> scores (as `evaluate_candidates` takes).
    queries_by_split: {split: the query set evaluated}.
    """
    out: dict[str, dict[str, Any]] = {}
    for split, queries in queries_by_split.items():
        fresh = queries.take(np.flatnonzero(fresh_targets(queries, videos)))
        out[split] = {
            "fresh": evaluate_next_watch(functools.partial(score, fresh), fresh, corpus_ids,
                                         ks=ks),
            "age_profile": age_profile(functools.partial(score, queries), queries, corpus_ids,
                                       videos),
        }
    return out


def has_upload_times(videos: pd.DataFrame) -> bool:
    """Whether the videos table knows every video's upload time."""
    return bool("upload_timestamp" in videos.columns
                and videos["upload_timestamp"].notna().all())
