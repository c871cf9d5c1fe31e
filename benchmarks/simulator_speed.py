"""Simulator speed and memory (issue 6 goal: 10M events in <= 2 min and <= 4 GiB, 2 cores).

Each measurement runs in a fresh process so its peak RSS is its own:
  simulate: `tfrec data simulate --preset medium` (about 10M events) straight to Parquet;
  baseline: reading those tables back and writing them again as Parquet, the floor any
            simulator writing these tables pays (the ratio simulate / baseline is what is
            comparable across noisy machines).

    python benchmarks/simulator_speed.py [--preset medium] [--out benchmarks/results]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

SIMULATE = """
import time, json, resource
from tfrec.data.simulator import preset, simulate_to_parquet
t = time.perf_counter()
counts = simulate_to_parquet(preset({preset!r}), {out!r}, seed=0)
print(json.dumps({{"seconds": time.perf_counter() - t, "counts": counts,
                   "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""
REWRITE = """
import time, json, resource, os
import pandas as pd
t = time.perf_counter()
for name in ("impressions", "watches", "searches", "users", "videos"):
    pd.read_parquet(os.path.join({out!r}, name + ".parquet")).to_parquet(
        os.path.join({out!r}, name + ".copy.parquet"), index=False)
print(json.dumps({{"seconds": time.perf_counter() - t,
                   "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""


def _measure(code):
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="medium")
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        sim = _measure(SIMULATE.format(preset=args.preset, out=tmp))
        base = _measure(REWRITE.format(out=tmp))
    events = sum(sim["counts"][t] for t in ("impressions", "watches", "searches"))
    result = {
        "preset": args.preset, "events": events, "counts": sim["counts"],
        "simulate_seconds": round(sim["seconds"], 2),
        "events_per_second": round(events / sim["seconds"]),
        "peak_rss_gib": round(sim["peak_rss_mib"] / 1024, 3),
        "baseline_rewrite_seconds": round(base["seconds"], 2),
        "simulate_over_baseline": round(sim["seconds"] / base["seconds"], 2),
        "cpus": os.cpu_count(), "load_average_1m": round(os.getloadavg()[0], 2),
        "goal": "10M events in <= 120 s and <= 4 GiB",
    }
    print(json.dumps(result, indent=2))
    with open(os.path.join(args.out, f"simulator_speed_{args.preset}.json"), "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    main()
