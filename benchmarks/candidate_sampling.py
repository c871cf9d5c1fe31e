"""Training throughput of the softmax losses at 1M videos, measured side by side in one run.

A synthetic corpus of VIDEOS videos (Zipf-popular labels), the real model (user tower with a
watch-history average, d=64) and the real tf.data pipeline (string ids, StringLookup inside the
model), batch 1024. Each loss runs in its own subprocess so its peak RSS is its own; throughput
is steady state: examples/s over timed steps after warm-up steps. Ratios are to the full softmax
measured in the same run. Results: benchmarks/results/candidate_sampling.{json,md}.

Run: .venv/bin/python benchmarks/candidate_sampling.py [--videos 1000000] [--steps 5]
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

HERE = os.path.dirname(os.path.abspath(__file__))
LOSSES = ("full", "sampled", "in_batch", "mixed")


def synthetic_examples(videos, examples, history, seed=0):
    import numpy as np
    from tfrec.features.example_set import ExampleSet
    from tfrec.features.ragged import Ragged
    rng = np.random.default_rng(seed)
    ids = np.array([f"v{i}" for i in range(videos)], dtype=object)
    labels = ids[np.minimum(rng.zipf(1.2, examples) - 1, videos - 1)]
    lengths = rng.integers(1, history + 1, examples)
    hist = ids[np.minimum(rng.zipf(1.2, int(lengths.sum())) - 1, videos - 1)]
    return ids, ExampleSet({"label": labels, "watch_history": Ragged(hist, lengths),
                            "example_age": rng.uniform(0, 1e7, examples)})


def measure_one(loss, args):
    import pandas as pd
    import tfrec  # noqa: F401
    from tfrec.config import SoftmaxConfig, UserTowerConfig
    from tfrec.features.dataset import candidate_dataset
    from tfrec.keras_check import require_keras2
    from tfrec.models.candidate_generation import CandidateGenerationModel
    tf = require_keras2()
    tf.keras.utils.set_random_seed(0)
    ids, examples = synthetic_examples(args.videos, args.examples, args.history)
    counts = pd.Series(examples["label"]).value_counts().reindex(ids, fill_value=0).to_numpy()
    tower = UserTowerConfig(features=("watch_history", "example_age"), embedding_dim=args.dim,
                            hidden_units=(args.dim,), max_history=args.history)
    model = CandidateGenerationModel(ids, counts, {}, 1e7, tower,
                                     SoftmaxConfig(loss=loss, num_negatives=args.negatives))
    model.compile(optimizer=tf.keras.optimizers.Adagrad(0.05))
    ds = candidate_dataset(examples, args.batch, args.history, shuffle_seed=0,
                           drop_remainder=True).repeat()
    it = iter(ds)
    step = model.make_train_function()
    for _ in range(args.warmup):
        step(it)
    start = time.perf_counter()
    for _ in range(args.steps):
        logs = step(it)
    float(logs["loss"])  # wait for the last step
    seconds = time.perf_counter() - start
    return {"loss": loss, "examples_per_second": args.batch * args.steps / seconds,
            "seconds_per_step": seconds / args.steps, "timed_steps": args.steps,
            "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--videos", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--negatives", type=int, default=4096)
    parser.add_argument("--history", type=int, default=20)
    parser.add_argument("--examples", type=int, default=100_000)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--full-steps", type=int, default=3, help="timed steps of full softmax")
    parser.add_argument("--one", choices=LOSSES, help=argparse.SUPPRESS)
    parser.add_argument("--out", default=os.path.join(HERE, "results"))
    args = parser.parse_args()
    if args.one:
        if args.one == "full":
            args.steps, args.warmup = args.full_steps, 1
        print(json.dumps(measure_one(args.one, args)))
        return
    results = []
    for loss in LOSSES:
        cmd = [sys.executable, __file__, "--one", loss] + [
            f"--{k.replace('_', '-')}={v}" for k, v in vars(args).items()
            if k not in ("one", "out")]
        out = subprocess.run(cmd, capture_output=True, text=True)
        if out.returncode != 0:
            raise SystemExit(f"{loss} failed:\n{out.stderr[-3000:]}")
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(results[-1], flush=True)
    base = results[0]["examples_per_second"]
    for r in results:
        r["speedup_vs_full"] = r["examples_per_second"] / base
    command = "python " + " ".join(["benchmarks/candidate_sampling.py", *sys.argv[1:]])
    settings = {k: getattr(args, k) for k in ("videos", "dim", "batch", "negatives", "history",
                                              "examples", "warmup", "steps", "full_steps")}
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "candidate_sampling.json"), "w") as f:
        json.dump({"command": command, "settings": settings, "results": results}, f, indent=2)
    lines = [f"Training throughput at {args.videos:,} videos, d={args.dim}, batch {args.batch}, "
             f"{args.negatives} sampled negatives (sampled, mixed), data pipeline included, "
             f"Adagrad; 2-core CPU. Command: `{command}`", "",
             "| loss | examples/s | s/step | x full softmax | peak RSS GiB |",
             "|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['loss']} | {r['examples_per_second']:.0f} | "
                     f"{r['seconds_per_step']:.3f} | {r['speedup_vs_full']:.1f} | "
                     f"{r['peak_rss_gib']:.2f} |")
    with open(os.path.join(args.out, "candidate_sampling.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
