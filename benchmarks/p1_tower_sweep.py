"""Validation-only sweep of candidate generation's tower and schedule on P1 (MovieLens-100K).

Rounds of one-change-at-a-time trials from a starting point: each round's trials are variants of
the round's base (the previous round's winner), trained on one seed; the winner is the trial with
the best validation figure (`--select`, map@100 by default, the config's selection metric), and
test is only reported. Candidate generation alone (no ranking, export or P3 comparison), one run
at a time, TensorFlow limited to one thread (other sessions share the two cores): the wall time
of each run is part of the result. `--final NAME...` trains the named trials again on more seeds
and reports test mean ± sd.

Every finished run is appended to the JSON results file at once, and a rerun skips the runs the
file already holds, so a sweep stopped at any point resumes where it was.

Run:  .venv/bin/python benchmarks/p1_tower_sweep.py                     # every round, seed 0
      .venv/bin/python benchmarks/p1_tower_sweep.py --rounds mean       # the mean encoder's rounds
      .venv/bin/python benchmarks/p1_tower_sweep.py --final 'full softmax' --seeds 0 1 2
Results: benchmarks/results/p1_tower_sweep.{json,md}.
"""
import argparse
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
import numpy as np  # noqa: E402

import tfrec  # noqa: E402,F401
from p1_candidate_generation import METRICS, MAIN, merge, variant_config  # noqa: E402
from tfrec.config import load_config  # noqa: E402
from tfrec.features.local_driver import build_candidate_examples  # noqa: E402
from tfrec.pipeline import load_events  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))

# The plain references of issue 19 (test, P1, written outside this project), for the table.
REFERENCES = {
    "plain Keras reference (1 seed)": {"recall@10": 0.1357, "recall@50": 0.4210,
                                       "recall@100": 0.5896, "ndcg@10": 0.0662,
                                       "map@100": 0.0604},
    "SASRec (1 seed)": {"recall@10": 0.1962, "recall@50": 0.4931, "recall@100": 0.6235,
                        "ndcg@10": 0.1005, "map@100": 0.0869},
}

# Each round: (name, trials). A trial is (name, overrides of the `candidate_generation`
# section), applied on top of the round's base; the base itself is always trial "base".
MEAN_ROUNDS = [
    ("loss and size", [
        ("full softmax", {"softmax": {"loss": "full"}}),
        ("full, 128-d, 512-256", {"softmax": {"loss": "full"},
                                  "tower": {"embedding_dim": 128, "hidden_units": [512, 256]}}),
        ("full, 128-d, 256-128", {"softmax": {"loss": "full"},
                                  "tower": {"embedding_dim": 128, "hidden_units": [256, 128]}}),
        ("full, 64-d, one 64 layer", {"softmax": {"loss": "full"},
                                      "tower": {"hidden_units": [64]}}),
    ]),
    ("schedule", [
        ("lr 0.006, 20 epochs", {"training": {"learning_rate": 0.006, "epochs": 20}}),
        ("batch 512, lr 0.004, 20 epochs", {"training": {"batch_size": 512,
                                                         "learning_rate": 0.004,
                                                         "epochs": 20}}),
    ]),
    ("regularisation", [
        ("dropout 0", {"tower": {"dropout": 0.0}}),
        ("dropout 0.4", {"tower": {"dropout": 0.4}}),
    ]),
]
ATTENTION_ROUNDS = [
    ("attention encoder", [
        ("attention, 1 block", {"tower": {"history_encoder": "attention"}}),
    ]),
]
ROUNDS = {"mean": MEAN_ROUNDS, "attention": ATTENTION_ROUNDS}


def trial_key(overrides, seed):
    return json.dumps({"overrides": overrides, "seed": seed}, sort_keys=True)


class Sweep:
    """Runs trials once each (by overrides and seed) and keeps every result in `path`."""

    def __init__(self, path, select):
        self.path, self.select = path, select
        self.data = json.load(open(path)) if os.path.exists(path) else {"runs": {}}
        self.data["command"] = "python " + " ".join(["benchmarks/p1_tower_sweep.py",
                                                     *sys.argv[1:]])
        self.base = load_config(MAIN)
        self.events = load_events(self.base.data, log=lambda *_: None)
        self.corpus = self.events.videos["video_id"].to_numpy()
        self.examples = build_candidate_examples(self.events, self.base.examples)

    def run(self, name, overrides, seed):
        """The result of `overrides` on `seed` (trained unless the results file has it)."""
        key = trial_key(overrides, seed)
        if key in self.data["runs"]:
            return self.data["runs"][key]
        from tfrec.models.training import train_candidate_generation
        config = variant_config(self.base, overrides, seed)
        cg = config.candidate_generation
        start = time.perf_counter()
        _, result = train_candidate_generation(self.examples, self.events.users, self.corpus,
                                               cg.tower, cg.softmax, cg.training,
                                               log=lambda *_: None)
        record = {"name": name, "overrides": overrides, "seed": seed,
                  "seconds": round(time.perf_counter() - start, 1),
                  "best_epoch": result["best_epoch"], "epochs_run": result["epochs_run"],
                  "validation": {m: result["validation"][m] for m in METRICS},
                  "test": {m: result["test"][m] for m in METRICS},
                  "epoch_seconds": [h["seconds"] for h in result["history"]]}
        self.data["runs"][key] = record
        self.save()
        print(f"{name} seed {seed}: validation {self.select} "
              f"{record['validation'][self.select]:.4f}, test " + " ".join(
                  f"{m}={record['test'][m]:.4f}" for m in METRICS)
              + f" (best epoch {record['best_epoch']}/{record['epochs_run']}, "
              f"{record['seconds']}s)", flush=True)
        return record

    def save(self):
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.data, f, indent=1)
        os.replace(tmp, self.path)

    def rounds(self, rounds, seed, base):
        """Greedy rounds from `base` (overrides of the main config); returns the winner's."""
        for round_name, trials in rounds:
            entries = [("base", base)] + [(n, merge(base, o)) for n, o in trials]
            scored = [(self.run(n, o, seed), n, o) for n, o in entries]
            winner = max(scored, key=lambda s: s[0]["validation"][self.select])
            self.data.setdefault("rounds", {})[round_name] = {
                "base": base, "trials": [trial_key(o, seed) for _, _, o in scored],
                "winner": winner[1], "winner_overrides": winner[2]}
            self.save()
            print(f"round {round_name!r}: winner {winner[1]!r}", flush=True)
            base = winner[2]
        return base

    def final(self, name, overrides, seeds):
        runs = [self.run(name, overrides, s) for s in seeds]
        self.data.setdefault("final", {})[name] = {
            "overrides": overrides, "seeds": seeds,
            **{m: {"mean": float(np.mean([r["test"][m] for r in runs])),
                   "sd": float(np.std([r["test"][m] for r in runs], ddof=1))
                   if len(runs) > 1 else 0.0} for m in METRICS},
            "seconds": [r["seconds"] for r in runs], "best_epoch": [r["best_epoch"] for r in runs]}
        self.save()


def markdown(data, select):
    lines = [f"P1 (docs/PROTOCOL.md), MovieLens-100K, candidate generation alone, one TensorFlow "
             f"thread; trials chosen on validation {select}, test reported.", "",
             f"Command: `{data['command']}`", ""]
    runs = data["runs"]
    for round_name, r in data.get("rounds", {}).items():
        lines += [f"### Round: {round_name} (winner: {r['winner']})", "",
                  f"| trial | validation {select} | " + " | ".join(f"test {m}" for m in METRICS)
                  + " | best epoch / run | seconds |", "|---|" + "---|" * (len(METRICS) + 3)]
        for key in r["trials"]:
            run = runs[key]
            lines.append(f"| {run['name']} | {run['validation'][select]:.4f} | " + " | ".join(
                f"{run['test'][m]:.4f}" for m in METRICS)
                + f" | {run['best_epoch']} / {run['epochs_run']} | {run['seconds']:.0f} |")
        lines.append("")
    if data.get("final"):
        lines += ["### Test, mean ± sd over seeds", "",
                  "| model | " + " | ".join(METRICS) + " | best epochs | seconds per run |",
                  "|---|" + "---|" * (len(METRICS) + 2)]
        for name, ref in REFERENCES.items():
            lines.append(f"| {name} | " + " | ".join(f"{ref[m]:.4f}" for m in METRICS)
                         + " | - | - |")
        for name, f in data["final"].items():
            lines.append(f"| {name} (seeds {f['seeds']}) | " + " | ".join(
                f"{f[m]['mean']:.4f} ± {f[m]['sd']:.4f}" for m in METRICS)
                + f" | {f['best_epoch']} | {', '.join(f'{s:.0f}' for s in f['seconds'])} |")
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", nargs="*", choices=sorted(ROUNDS), default=["mean"])
    parser.add_argument("--seed", type=int, default=0, help="the rounds' seed")
    parser.add_argument("--final", nargs="*", default=[],
                        help="NAME=JSON overrides to train on --seeds and report as mean ± sd")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--select", default="map@100", choices=METRICS)
    parser.add_argument("--out", default=os.path.join(HERE, "results"))
    args = parser.parse_args()
    import tensorflow as tf
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    os.makedirs(args.out, exist_ok=True)
    sweep = Sweep(os.path.join(args.out, "p1_tower_sweep.json"), args.select)
    if args.final:
        for spec in args.final:
            name, overrides = spec.split("=", 1)
            sweep.final(name, json.loads(overrides), args.seeds)
    else:
        base = {}
        for name in args.rounds:
            base = sweep.rounds(ROUNDS[name], args.seed, base)
    table = markdown(sweep.data, args.select)
    with open(os.path.join(args.out, "p1_tower_sweep.md"), "w") as f:
        f.write(table)
    print(table)


if __name__ == "__main__":
    main()
