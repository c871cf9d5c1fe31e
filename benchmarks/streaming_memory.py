"""Peak memory and speed of one training epoch streamed from shards, at n and 4n examples.

Training examples are built (in a process of their own) by the local driver from the synthetic
events of `benchmarks/example_building.py` (heavy-tailed watch counts; `--users` and 4x as many
users), then written as TFRecord shards with their facts file
(`tfrec.features.example_records.write_split`) and as Parquet. Each training run is its own
process (so `ru_maxrss` is its own peak), one TensorFlow thread: it builds the model from the
facts file (no example is loaded), trains one epoch, and reports its peak RSS and examples/s.
The in-memory path (`EpochBatches` over the Parquet examples) runs on the same data for the speed
and memory comparison.

Goal: streaming peak RSS at 4n within 10% of that at n. This parent process stays small and does
no work itself: on Linux a child's `ru_maxrss` starts from the parent's RSS at the fork (the high
water mark survives exec), so a parent holding the examples would inflate every child's peak.

Run: .venv/bin/python benchmarks/streaming_memory.py [--users 2000] [--shards 4] [--out DIR]
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

TOWER = {"features": ["watch_history", "search_tokens", "example_age"], "max_history": 50}
SOFTMAX = {"loss": "sampled", "num_negatives": 1024}
BATCH = 256


def build(users: int, folder: str, shards: int) -> dict:
    """Examples of `users` synthetic users as shards and Parquet in `folder`; their counts."""
    from example_building import synthetic_events

    from tfrec.config import ExampleConfig
    from tfrec.features.example_records import write_split
    from tfrec.features.local_driver import build_candidate_examples
    from tfrec.tf_keras2 import tf  # noqa: F401  (imported now: not part of the timed writing)
    events = synthetic_events(users, videos=20_000, mean_watches=60)
    examples = build_candidate_examples(events, ExampleConfig())
    start = time.perf_counter()
    facts = write_split(examples.train, folder, "train", shards)
    seconds = time.perf_counter() - start
    examples.train.to_parquet(os.path.join(folder, "train.parquet"))
    with open(os.path.join(folder, "videos.json"), "w") as f:
        json.dump(events.videos["video_id"].astype(str).tolist(), f)
    return {"users": users, "examples": facts.count, "shard_bytes": facts.bytes,
            "write_examples_per_second": round(facts.count / seconds)}


def train_one_epoch(folder: str, mode: str) -> dict:
    """In this process: one training epoch on the examples of `folder` (`mode`: "streaming"
    from the shards, "memory" from the Parquet examples); peak RSS and speed."""
    import numpy as np

    from tfrec.config import SoftmaxConfig, TrainingConfig, UserTowerConfig
    from tfrec.features.dataset import EpochBatches
    from tfrec.features.example_records import read_facts
    from tfrec.features.example_set import ExampleSet
    from tfrec.features.shard_dataset import ShardBatches
    from tfrec.models.training import model_from_artifacts
    from tfrec.tf_keras2 import tf
    tower = UserTowerConfig.model_validate(TOWER)
    softmax = SoftmaxConfig.model_validate(SOFTMAX)
    training = TrainingConfig(batch_size=BATCH)
    facts = read_facts(folder, "train")  # the artifacts come from the facts, in both modes
    with open(os.path.join(folder, "videos.json")) as f:
        videos = json.load(f)
    artifacts = {"video_ids": videos, "label_counts": [facts.label_counts.get(v, 0)
                                                       for v in videos],
                 "demographic_vocabularies": {},
                 "max_example_age_seconds": facts.max_example_age_seconds}
    tf.keras.utils.set_random_seed(0)
    model = model_from_artifacts(artifacts, tower, softmax)
    model.compile(optimizer=tf.keras.optimizers.Adam(training.learning_rate))
    if mode == "streaming":
        batches = ShardBatches.from_facts(facts, folder, BATCH, max_history=tower.max_history,
                                          max_search_tokens=tower.max_search_tokens,
                                          shuffle_buffer=training.shuffle_buffer)
    else:
        batches = EpochBatches(ExampleSet.from_parquet(os.path.join(folder, "train.parquet")),
                               BATCH, tower.max_history, tower.max_search_tokens)
    start = time.perf_counter()
    fit = model.fit(batches.epoch(1), epochs=1, verbose=0)
    seconds = time.perf_counter() - start
    loss = float(fit.history["loss"][-1])
    assert np.isfinite(loss)
    return {"mode": mode, "examples": batches.steps * BATCH, "seconds": round(seconds, 1),
            "examples_per_second": round(batches.steps * BATCH / seconds),
            "loss": round(loss, 4),
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}


def _run(*args: str) -> str:
    """The last stdout line of this script run with `args` in a new process."""
    out = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(f"{args} failed:\n{out.stderr[-3000:]}")
    return out.stdout.splitlines()[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=2000, help="users of the n-example run")
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--out", default=None, help="write streaming_memory.json there")
    parser.add_argument("--child", nargs=2, metavar=("FOLDER", "MODE"), help=argparse.SUPPRESS)
    parser.add_argument("--build", nargs=2, metavar=("FOLDER", "USERS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(train_one_epoch(*args.child)))
        return
    if args.build:
        print(json.dumps(build(int(args.build[1]), args.build[0], args.shards)))
        return
    results: dict = {"batch_size": BATCH, "tower": TOWER, "softmax": SOFTMAX, "runs": []}
    with tempfile.TemporaryDirectory() as root:
        for scale in (1, 4):
            folder = os.path.join(root, f"x{scale}")
            data = json.loads(_run("--build", folder, str(args.users * scale),
                                   "--shards", str(args.shards)))
            print(f"{scale}n: {data}", flush=True)
            for mode in ("streaming", "memory"):
                run = {"scale": f"{scale}n", **data,
                       **json.loads(_run("--child", folder, mode))}
                print(f"  {run}", flush=True)
                results["runs"].append(run)
    peak = {(r["scale"], r["mode"]): r["peak_rss_mib"] for r in results["runs"]}
    growth = peak[("4n", "streaming")] / peak[("1n", "streaming")] - 1
    results["streaming_rss_growth_4n_vs_n"] = round(growth, 4)
    print(f"streaming peak RSS 4n vs n: {growth:+.1%} (goal within 10%); in memory: "
          f"{peak[('4n', 'memory')] / peak[('1n', 'memory')] - 1:+.1%}")
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "streaming_memory.json"), "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
