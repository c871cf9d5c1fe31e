"""Example-building speed: the local driver on one core, against a naive reference in the same run.

Synthetic events: USERS users with heavy-tailed (log-normal) watch counts over VIDEOS videos.
Reports steady figures of `build_candidate_examples` (examples per minute, on one core) and, on a
subset of users, the speed of a plain per-example Python loop computing the same examples (the
baseline), whose output is also checked to be identical.

Run: .venv/bin/python benchmarks/example_building.py [--users 30000] [--out benchmarks/results]
"""
import argparse
import json
import os
import platform
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

import tfrec  # noqa: E402,F401
from tfrec.config import ExampleConfig  # noqa: E402
from tfrec.data.schema import EventTables  # noqa: E402
from tfrec.features.local_driver import build_candidate_examples  # noqa: E402
from tfrec.features.ordering import order_watches  # noqa: E402
from tfrec.features.split import TRAIN, next_watch_roles  # noqa: E402


def synthetic_events(users, videos, mean_watches, seed=0):
    rng = np.random.default_rng(seed)
    counts = np.maximum(3, rng.lognormal(np.log(mean_watches) - 0.5, 1.0, users).astype(int))
    user_ids = np.repeat(np.arange(users), counts).astype(str).astype(object)
    video_ids = rng.zipf(1.3, counts.sum()) % videos
    times = rng.integers(1_000_000_000, 1_100_000_000, counts.sum())
    watches = pd.DataFrame({"user_id": user_ids, "video_id": video_ids.astype(str).astype(object),
                            "timestamp": times, "watch_time": rng.random(counts.sum()) * 600})
    return EventTables(
        watches=watches,
        users=pd.DataFrame({"user_id": np.arange(users).astype(str).astype(object),
                            "age": rng.integers(18, 70, users).astype(str).astype(object)}),
        videos=pd.DataFrame({"video_id": np.arange(videos).astype(str).astype(object)}))


def naive_examples(events, config):
    """Per-example Python loop (no cap): the obvious implementation, as the speed baseline."""
    w = order_watches(events.watches)
    roles = next_watch_roles(w["user_id"].to_numpy())
    end = int(w["timestamp"][roles == TRAIN].max())
    labels, histories, ages = [], [], []
    for _, g in w.assign(role=roles).groupby("user_id", sort=False):
        vids, ts, rs = list(g["video_id"]), list(g["timestamp"]), list(g["role"])
        for i in range(len(vids)):
            if rs[i] != TRAIN:
                continue
            hist = [vids[j] for j in range(i - 1, -1, -1)][:config.max_history]
            if i >= config.min_history:
                labels.append(vids[i])
                histories.append(hist)
                ages.append(end - ts[i])
    return labels, histories, ages


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=30_000)
    parser.add_argument("--videos", type=int, default=100_000)
    parser.add_argument("--mean-watches", type=int, default=100)
    parser.add_argument("--baseline-users", type=int, default=1_000)
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results"))
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core

    events = synthetic_events(args.users, args.videos, args.mean_watches)
    no_cap = ExampleConfig(max_examples_per_user=0)
    results = {"users": args.users, "watches": int(len(events.watches)),
               "cpu": platform.processor() or platform.machine(), "cores_used": 1}
    for name, config in (("capped_100", ExampleConfig()), ("uncapped", no_cap)):
        build_candidate_examples(events, config)  # warm-up
        start = time.perf_counter()
        ex = build_candidate_examples(events, config)
        seconds = time.perf_counter() - start
        results[name] = {"examples": len(ex.train), "seconds": round(seconds, 2),
                         "examples_per_minute": round(len(ex.train) / seconds * 60)}
        print(name, results[name], flush=True)

    # Baseline on a subset (it is slow), and an equality check of the outputs.
    subset_users = set(np.arange(args.baseline_users).astype(str))
    sub = EventTables(watches=events.watches[events.watches.user_id.isin(subset_users)]
                      .reset_index(drop=True), users=events.users, videos=events.videos)
    start = time.perf_counter()
    labels, histories, ages = naive_examples(sub, no_cap)
    naive_s = time.perf_counter() - start
    start = time.perf_counter()
    fast = build_candidate_examples(sub, no_cap).train
    fast_s = time.perf_counter() - start
    same = (fast["label"].tolist() == labels and fast["example_age"].tolist() == ages and
            fast["watch_history"].values.tolist() == [v for h in histories for v in h])
    results["baseline_subset"] = {
        "users": args.baseline_users, "examples": len(labels), "naive_seconds": round(naive_s, 2),
        "driver_seconds": round(fast_s, 3), "speedup_vs_naive": round(naive_s / fast_s, 1),
        "identical_output": bool(same)}
    print("baseline", results["baseline_subset"], flush=True)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "example_building.json"), "w") as f:
        json.dump(results, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    main()
