"""Time and peak RSS of the candidate generator's evaluation at the `medium` world's size.

The evaluation functions alone, on synthetic queries over the real `medium` simulator world
(80k users, 100k videos): each query is one user's, with a popularity-drawn target, 17 watched
videos excluded (1.36M watches / 80k users) and a query time after 90% of the uploads. Two jobs:

  validation   one epoch's validation: `evaluate_next_watch` of a dot-product scorer (random
               32-dimensional user and video vectors) over `--validation-queries` queries;
  popularity   the popularity stage's evaluation: `evaluate_candidates` of the popularity
               scorer on validation and test (next-watch metrics at every K of the report,
               true recall against the world, fresh slice, age profile).

Run one job per process (peak RSS is the process's), TensorFlow on one thread:

  TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1 OMP_NUM_THREADS=1 \
    .venv/bin/python benchmarks/evaluation_scale.py validation --validation-queries 80000

Prints one JSON line: seconds, queries and peak RSS (the process's, and before evaluating).
"""
import argparse
import json
import resource
import time
import types

import numpy as np
import pandas as pd

from tfrec.data.simulator import build_world, preset
from tfrec.evaluation.candidates import evaluate_candidates
from tfrec.evaluation.next_watch import evaluate_next_watch
from tfrec.features.example_set import ExampleSet
from tfrec.features.ragged import Ragged
from tfrec.models.popularity import Popularity

KS = (1, 5, 10, 20, 50, 100, 200, 500)  # the pipeline's evaluation_ks
WATCHED = 17


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def synthetic_queries(world: object, n: int, popularity: np.ndarray, seed: int) -> ExampleSet:
    """n queries of distinct users: label, exclusions (Ragged ids), user_id, timestamp."""
    rng = np.random.default_rng(seed)
    videos = len(popularity)
    p = popularity / popularity.sum()
    users = rng.choice(len(world.user_taste), size=n, replace=False)  # type: ignore[attr-defined]
    labels = rng.choice(videos, size=n, p=p)
    watched = rng.choice(videos, size=(n, WATCHED), p=p)
    upload = world.upload  # type: ignore[attr-defined]
    times = np.quantile(upload, 0.9) + rng.random(n) * (upload.max() - np.quantile(upload, 0.9))
    ids = np.array([f"v{j}" for j in range(videos)], dtype=object)
    return ExampleSet({"label": ids[labels], "user_id": np.array([f"u{i}" for i in users],
                                                                 dtype=object),
                       "timestamp": times.astype(np.int64),
                       "exclusions": Ragged(ids[watched.ravel()],
                                            np.full(n, WATCHED, dtype=np.int64))})


def model_scores(u: np.ndarray, table: np.ndarray) -> object:
    """The scorer `evaluate_model` uses: the TensorFlow one where it exists (after issue 16),
    else the NumPy product it used before."""
    try:
        from tfrec.evaluation.exact_scoring import dot_product_scores
    except ImportError:
        return lambda s, e: u[s:e] @ table.T
    return dot_product_scores(u, table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("job", choices=("validation", "popularity"))
    parser.add_argument("--validation-queries", type=int, default=80_000)
    parser.add_argument("--test-queries", type=int, default=80_000)
    args = parser.parse_args()
    world = build_world(preset("medium"), 0)
    v = len(world.upload)
    corpus = np.array([f"v{j}" for j in range(v)], dtype=object)
    rng = np.random.default_rng(0)
    counts = rng.zipf(1.3, size=v).clip(max=50_000).astype(np.float64)
    validation = synthetic_queries(world, args.validation_queries, counts, 1)
    rss_before = peak_rss_mib()
    start = time.perf_counter()
    if args.job == "validation":
        u = rng.normal(size=(len(validation), 32)).astype(np.float32)
        table = rng.normal(size=(v, 32)).astype(np.float32)
        figures = evaluate_next_watch(model_scores(u, table), validation, corpus, ks=KS)
        queries = {"validation": len(validation)}
    else:
        test = synthetic_queries(world, args.test_queries, counts, 2)
        examples = types.SimpleNamespace(validation=validation, test=test)
        model = Popularity(corpus, corpus[:1])
        model.counts = counts  # the synthetic training watch counts, without 10M+ id strings
        videos = pd.DataFrame({"video_id": corpus, "upload_timestamp": world.upload})
        rss_before = peak_rss_mib()
        start = time.perf_counter()
        figures = evaluate_candidates(lambda q, s, e: model.scores(e - s), examples, corpus,
                                      KS, world, per_query=False, videos=videos)["test"]
        queries = {"validation": len(validation), "test": len(test)}
    seconds = time.perf_counter() - start
    print(json.dumps({"job": args.job, "queries": queries, "seconds": round(seconds, 1),
                      "peak_rss_mib": round(peak_rss_mib()), "rss_before_mib": round(rss_before),
                      "recall@10": figures.get("recall@10")}))


if __name__ == "__main__":
    main()
