"""Example building on Apache Beam vs the local driver, on the simulator's worlds.

For each world (default `small`; `medium` has 1.36M watches) the events are simulated once and
written as the events stage writes them (`tfrec.data.schema.write_events`, cached under --out).
Then each driver runs in its own process (so `ru_maxrss` is its own peak; Beam's worker processes
are children, measured apart), one TensorFlow thread:

  local   `read_events` + `build_candidate_examples` (+ the training shards, `write_split`, so
          both write the same kind of output)
  beam1   `build_candidate_examples_beam`, DirectRunner in this process (direct_num_workers 1)
  beam2   DirectRunner, direct_num_workers 2, direct_running_mode multi_processing

Figures: wall seconds, examples/s (train + validation + test rows over wall seconds), peak RSS,
and the shard bytes per split (GZIP TFRecords). The protocol is P1 with the default ExampleConfig.

Run: .venv/bin/python benchmarks/example_building_beam.py [--worlds small medium] [--out DIR]
"""
import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
HERE = os.path.dirname(os.path.abspath(__file__))
MODES = ("local", "beam1", "beam2")
BEAM_OPTIONS = {"beam1": {"direct_num_workers": 1},
                "beam2": {"direct_num_workers": 2, "direct_running_mode": "multi_processing"}}
TRAIN_SHARDS = 4


def events_folder(world: str, out: str) -> str:
    """The world's event tables as Parquet under `out` (simulated on first use)."""
    folder = os.path.join(out, f"events_{world}")
    if not os.path.exists(os.path.join(folder, "watches.parquet")):
        from tfrec.data.schema import write_events
        from tfrec.data.simulator import preset, simulate
        _, events = simulate(preset(world), seed=0)
        write_events(events, folder)
    return folder


def run_mode(mode: str, events_dir: str, folder: str) -> dict:
    """In this process: build the examples with `mode`; wall time, counts and bytes."""
    from tfrec.config import EvaluationConfig, ExampleConfig
    shutil.rmtree(folder, ignore_errors=True)
    protocol = EvaluationConfig()
    start = time.perf_counter()
    if mode == "local":
        from tfrec.data.schema import read_events
        from tfrec.features.example_records import write_split
        from tfrec.features.local_driver import build_candidate_examples
        examples = build_candidate_examples(read_events(events_dir), ExampleConfig(),
                                            protocol=protocol)
        built = time.perf_counter() - start
        shard_bytes = {"train": write_split(examples.train, folder, "train", TRAIN_SHARDS).bytes}
        counts = examples.counts()
    else:
        from tfrec.features.beam_driver import build_candidate_examples_beam
        config = ExampleConfig.model_validate({"driver": "beam", "beam": {
            "runner": "DirectRunner", "options": BEAM_OPTIONS[mode]}})
        result = build_candidate_examples_beam(events_dir, folder, config, protocol,
                                               num_shards=TRAIN_SHARDS)
        built = None
        shard_bytes = {split: f.bytes for split, f in result.facts.items()}
        counts = result.counts()
    seconds = time.perf_counter() - start
    total = sum(counts.values())
    return {"mode": mode, "seconds": round(seconds, 2),
            "build_seconds_without_shards": None if built is None else round(built, 2),
            "examples": counts, "examples_per_second": round(total / seconds),
            "shard_bytes": shard_bytes,
            "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
            "children_peak_rss_gib": round(
                resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worlds", nargs="+", default=["small"])
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    parser.add_argument("--out", default=os.path.join(tempfile.gettempdir(), "tfrec_beam_bench"),
                        help="events and examples written here (not committed)")
    parser.add_argument("--one", nargs=3, metavar=("MODE", "EVENTS", "FOLDER"),
                        help=argparse.SUPPRESS)  # a child run
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_mode(*args.one)))
        return
    results = []
    for world in args.worlds:
        events_dir = events_folder(world, args.out)
        for mode in args.modes:
            out = subprocess.run([sys.executable, __file__, "--one", mode, events_dir,
                                  os.path.join(args.out, f"examples_{world}_{mode}")],
                                 capture_output=True, text=True, check=True)
            figures = {"world": world, **json.loads(out.stdout.strip().splitlines()[-1]),
                       "load_average": [round(x, 2) for x in os.getloadavg()]}
            print(json.dumps(figures), flush=True)
            results.append(figures)
    # Other worlds' runs of an earlier invocation stay (small and medium run separately).
    path = os.path.join(HERE, "results", "example_building_beam.json")
    kept = []
    if os.path.exists(path):
        with open(path) as f:
            kept = [r for r in json.load(f)["runs"] if r["world"] not in args.worlds]
    with open(path, "w") as f:
        json.dump({"runs": kept + results}, f, indent=1)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
