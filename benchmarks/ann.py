"""ScaNN vs exact brute force at 1M videos, side by side in one run (docs/PROTOCOL.md, ANN).

Synthetic clustered embeddings with varied norms, in two difficulties: "tight" clusters and
"overlapping" ones (wider noise). For each: recall@10 of ScaNN against exact top-10 on 10,000
queries, batch queries/s (all cores), single-query p50/p99 latency (one thread, in a separate
process), index build time and bytes; then the same servables exported as SavedModels (a vector-in
user tower, so only retrieval is timed). ScaNN is tuned on 1,000 other queries to recall@10 >= 0.95.

Run: .venv/bin/python benchmarks/ann.py [--videos 1000000] [--queries 10000]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import numpy as np  # noqa: E402

import tfrec  # noqa: E402,F401
from tfrec.keras_check import require_keras2  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
LATENCY = r'''
import json, os, sys, time
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import numpy as np
import tensorflow as tf
tf.config.threading.set_intra_op_parallelism_threads(1)
tf.config.threading.set_inter_op_parallelism_threads(1)
import scann
queries = np.load(sys.argv[1])
out = {}
for name in sys.argv[2:]:
    fn = tf.saved_model.load(name).signatures["serving_default"]
    fn(user_vector=tf.constant(queries[:1]))
    times = []
    for q in queries:
        start = time.perf_counter()
        fn(user_vector=tf.constant(q[None, :]))
        times.append(time.perf_counter() - start)
    out[name] = {"p50_ms": 1e3 * float(np.percentile(times, 50)),
                 "p99_ms": 1e3 * float(np.percentile(times, 99))}
print(json.dumps(out))
'''


def clustered(rng, n, dim, centers, noise):
    points = centers[rng.integers(0, len(centers), n)] + noise * rng.normal(size=(n, dim))
    return (points * rng.lognormal(0.0, 0.35, (n, 1))).astype(np.float32)


def dir_bytes(path):
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)


def measure(name, table, queries, tune_queries, k, out_dir, latency_queries):
    tf = require_keras2()
    from tfrec.serving.export import export_servable
    from tfrec.serving.retrieval import BruteForceRetrieval, ScannRetrieval
    from tfrec.evaluation.exact_scoring import exact_top_k
    from tfrec.serving.scann_index import recall_against_exact, search, tune_scann
    ids = np.array([f"v{i}" for i in range(len(table))], dtype=object)
    result = {"videos": len(table), "queries": len(queries)}

    exact_top_k(queries[:256], table, k)  # warm-up
    start = time.perf_counter()
    exact = exact_top_k(queries, table, k)
    result["brute_force_qps"] = len(queries) / (time.perf_counter() - start)

    settings, tuning, searcher = tune_scann(table, tune_queries, k=k, target_recall=0.95,
                                            log=lambda m: print(f"[{name}]{m}", flush=True))
    result["scann_build_seconds"] = tuning["build_seconds"]
    search(searcher, queries[:256], k, settings)  # warm-up
    start = time.perf_counter()
    approx = search(searcher, queries, k, settings)
    result["scann_qps"] = len(queries) / (time.perf_counter() - start)
    result["scann_recall@10"] = recall_against_exact(approx, exact)
    result["speedup"] = result["scann_qps"] / result["brute_force_qps"]
    result["scann_settings"] = tuning["settings"]
    result["tuning_recall@10"] = tuning[f"recall@{k}"]

    # The same through exported SavedModels (vector in, ids out).
    user_vector = tf.keras.Input((table.shape[1],), name="user_vector")
    tower = tf.keras.Model({"user_vector": user_vector},
                           tf.keras.layers.Identity()(user_vector))
    paths = {
        "brute_force": export_servable(BruteForceRetrieval(tower, ids, table, k), out_dir,
                                       f"{name}_brute_force", {}),
        "scann": export_servable(ScannRetrieval(tower, ids, searcher.serialize_to_module(), k,
                                                search_kwargs=settings.search_kwargs()),
                                 out_dir, f"{name}_scann", {}, scann=True),
    }
    result["savedmodel_bytes"] = {n: dir_bytes(p) for n, p in paths.items()}
    batches = [queries[i:i + 1000] for i in range(0, len(queries), 1000)]
    for n, path in paths.items():
        fn = tf.saved_model.load(path).signatures["serving_default"]
        fn(user_vector=tf.constant(batches[0]))
        start = time.perf_counter()
        got = [fn(user_vector=tf.constant(b))["video_ids"].numpy() for b in batches]
        result[f"savedmodel_{n}_qps"] = len(queries) / (time.perf_counter() - start)
        rows = np.array([[int(v[1:]) for v in row] for row in np.concatenate(got)])
        result[f"savedmodel_{n}_recall@10"] = recall_against_exact(rows, exact)
    with tempfile.NamedTemporaryFile(suffix=".npy", delete=False) as f:
        np.save(f, queries[:latency_queries])
    lat = subprocess.run([sys.executable, "-c", LATENCY, f.name, paths["brute_force"],
                          paths["scann"]], capture_output=True, text=True)
    os.unlink(f.name)
    if lat.returncode != 0:
        raise SystemExit(lat.stderr[-3000:])
    latency = json.loads(lat.stdout.strip().splitlines()[-1])
    result["single_query_latency_ms"] = {"brute_force": latency[paths["brute_force"]],
                                         "scann": latency[paths["scann"]]}
    print(name, json.dumps(result), flush=True)
    return result


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--videos", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--queries", type=int, default=10_000)
    parser.add_argument("--latency-queries", type=int, default=300)
    parser.add_argument("--out", default=os.path.join(HERE, "results"))
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(2000, args.dim)).astype(np.float32)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, noise in (("tight", 0.3), ("overlapping", 1.0)):
            table = clustered(rng, args.videos, args.dim, centers, noise)
            queries = clustered(rng, args.queries, args.dim, centers, noise)
            tune = clustered(rng, 1000, args.dim, centers, noise)
            results[name] = measure(name, table, queries, tune, 10, tmp, args.latency_queries)
    command = "python " + " ".join(["benchmarks/ann.py", *sys.argv[1:]])
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "ann.json"), "w") as f:
        json.dump({"command": command, "results": results}, f, indent=2)
    lines = [f"ANN at {args.videos:,} videos x {args.dim} dims, {args.queries:,} queries, k=10, "
             f"2-core CPU, ScaNN tuned to recall@10 >= 0.95 on 1,000 other queries. "
             f"Command: `{command}`", "",
             "| data | ScaNN recall@10 | brute force q/s | ScaNN q/s | speed-up | build s | "
             "p50/p99 ms brute force | p50/p99 ms ScaNN | SavedModel q/s bf / ScaNN | "
             "SavedModel MB bf / ScaNN | settings |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        lb, ls = r["single_query_latency_ms"]["brute_force"], r["single_query_latency_ms"]["scann"]
        s = r["scann_settings"]
        lines.append(
            f"| {name} | {r['scann_recall@10']:.4f} | {r['brute_force_qps']:.0f} | "
            f"{r['scann_qps']:.0f} | {r['speedup']:.1f}x | {r['scann_build_seconds']:.1f} | "
            f"{lb['p50_ms']:.2f} / {lb['p99_ms']:.2f} | {ls['p50_ms']:.2f} / {ls['p99_ms']:.2f} | "
            f"{r['savedmodel_brute_force_qps']:.0f} / {r['savedmodel_scann_qps']:.0f} | "
            f"{r['savedmodel_bytes']['brute_force'] / 2**20:.0f} / "
            f"{r['savedmodel_bytes']['scann'] / 2**20:.0f} | leaves {s['num_leaves_to_search']}/"
            f"{s['num_leaves']}, reorder {s['reorder']} |")
    with open(os.path.join(args.out, "ann.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
