"""P2 (docs/PROTOCOL.md) ablation of candidate generation on the simulated world: do search
tokens and example age help where they should?

Every variant is pipelines/simulated_youtube.yaml with other tower features, trained with the
epoch chosen on validation map@100, reported on test (next-watch metrics and recall of the true
top-K by affinity), mean ± std over seeds, beside popularity. A test query whose target is a
re-watch (the video is in the user's earlier history) is not scored (`evaluate_next_watch`); the
table says how many were skipped.
Results: benchmarks/results/p2_candidate_generation.{json,md}.

Run:  .venv/bin/python benchmarks/p2_candidate_generation.py                  # the committed table
      .venv/bin/python benchmarks/p2_candidate_generation.py --only search --out /tmp/p2a
      .venv/bin/python benchmarks/p2_candidate_generation.py --merge /tmp/p2a/*.json /tmp/p2b/*.json
"""
import argparse
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import numpy as np  # noqa: E402

import tfrec  # noqa: E402,F401
from tfrec.config import load_config  # noqa: E402
from tfrec.evaluation.candidates import compare_per_query, evaluate_candidates  # noqa: E402
from tfrec.features.local_driver import build_candidate_examples  # noqa: E402
from tfrec.models.popularity import Popularity  # noqa: E402
from tfrec.pipeline import load_events, simulated_world  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from p1_candidate_generation import variant_config  # noqa: E402

CONFIG = os.path.join(HERE, "..", "pipelines", "simulated_youtube.yaml")
METRICS = ("recall@10", "recall@100", "map@100", "true_recall@10", "true_recall@100")
VARIANTS = {
    "history only": ["watch_history"],
    "+ search tokens": ["watch_history", "search_tokens"],
    "+ example age": ["watch_history", "example_age"],
    "all (+ demographics)": ["watch_history", "search_tokens", "demographics", "example_age"],
}
BASELINE = "history only"  # the variant the others are compared with, query by query


def run_variants(names, seeds):
    base = load_config(CONFIG)
    events = load_events(base.data, log=lambda *_: None)
    world = simulated_world(base.data)
    corpus = events.videos["video_id"].to_numpy()
    # P2 is P1's split on the simulator (the shipped simulator pipeline runs P3).
    examples = build_candidate_examples(events, base.examples, protocol=base.evaluation.model_copy(
        update={"protocol": "p1"}))
    pop = Popularity(corpus, examples.train_watches["video_id"].to_numpy())
    popularity, pop_rows = evaluate_candidates(lambda q, s, e: pop.scores(e - s), examples,
                                               corpus, base.evaluation.ks, world,
                                               splits=("test",), per_query=True)
    popularity, pop_rows = popularity["test"], pop_rows["test"]
    from tfrec.models.training import query_scorer, train_candidate_generation
    runs, history_only = {}, {}  # history_only: {seed: per-query test figures}
    for name in names:
        runs[name] = []
        for seed in seeds:
            config = variant_config(base, {"tower": {"features": VARIANTS[name]}}, seed)
            cg = config.candidate_generation
            start = time.perf_counter()
            model, result = train_candidate_generation(
                examples, events.users, corpus, cg.tower, cg.softmax, cg.training,
                ks=base.evaluation.ks, log=lambda *_: None)
            test, rows = evaluate_candidates(query_scorer(model, cg.tower), examples, corpus,
                                             base.evaluation.ks, world, splits=("test",),
                                             per_query=True)
            test, rows = test["test"], rows["test"]
            # Paired over the same test queries (95% bootstrap intervals): against popularity,
            # and against history only of the same seed when this invocation trained it.
            paired = {"popularity": compare_per_query(rows, pop_rows)}
            if name == BASELINE:
                history_only[seed] = rows
            elif seed in history_only:
                paired[BASELINE] = compare_per_query(rows, history_only[seed])
            runs[name].append({"seed": seed, "best_epoch": result["best_epoch"],
                               "seconds": round(time.perf_counter() - start, 1), "test": test,
                               "minus": paired})
            print(f"{name} seed {seed}: " + " ".join(f"{m}={test[m]:.4f}" for m in METRICS),
                  flush=True)
    return popularity, runs


def table(popularity, runs, seeds, command):
    scored, skipped = popularity["queries"], popularity.get("rewatch_targets_skipped", 0)
    lines = ["Simulated world (`small`: 10k videos, 5k users; docs/PROTOCOL.md P2), test split, "
             f"epoch chosen on validation map@100; mean ± std over seeds {seeds}. {scored} test "
             f"queries scored; {skipped} whose target is a re-watch are not (the re-watch rule; "
             "the same queries for every row, true recall included).", "",
             f"Command: `{command}`", "",
             "| tower features | " + " | ".join(METRICS) + " | best epochs |",
             "|---|" + "---|" * (len(METRICS) + 1),
             "| popularity | " + " | ".join(f"{popularity[m]:.4f}" for m in METRICS) + " | - |"]
    for name in VARIANTS:
        if name not in runs:
            continue
        cells = []
        for m in METRICS:
            v = np.array([r["test"][m] for r in runs[name]])
            cells.append(f"{v.mean():.4f} ± {v.std(ddof=1):.4f}" if len(v) > 1 else
                         f"{v.mean():.4f}")  # one seed: no spread to show
        lines.append(f"| {name} | " + " | ".join(cells) + " | "
                     + str([r["best_epoch"] for r in runs[name]]) + " |")
    paired = [(name, r["seed"], other, diff) for name in VARIANTS for r in runs.get(name, [])
              for other, diff in r.get("minus", {}).items()]
    if paired:
        compared = list(paired[0][3])
        lines += ["", "Paired differences on the same test queries, with 95% intervals (paired "
                  "bootstrap over queries, 1,000 resamples); an interval containing 0 is no "
                  "evidence of a difference.", "",
                  "| variant | seed | minus | " + " | ".join(compared) + " |",
                  "|---|---|---|" + "---|" * len(compared)]
        for name, seed, other, diff in paired:
            lines.append(f"| {name} | {seed} | {other} | " + " | ".join(
                "{:+.4f} [{:+.4f}, {:+.4f}]".format(diff[m]["difference"], *diff[m]["ci95"])
                for m in compared) + " |")
    return "\n".join(lines) + "\n"


def write(out, popularity, runs, seeds, command):
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "p2_candidate_generation.json"), "w") as f:
        json.dump({"command": command, "seeds": seeds, "popularity": popularity, "runs": runs},
                  f, indent=2)
    text = table(popularity, runs, seeds, command)
    with open(os.path.join(out, "p2_candidate_generation.md"), "w") as f:
        f.write(text)
    return text


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--only", nargs="*", help="substrings of variant names to run")
    parser.add_argument("--out", default=os.path.join(HERE, "results"))
    parser.add_argument("--merge", nargs="+", metavar="JSON",
                        help="combine result files of runs made in parallel (no training)")
    args = parser.parse_args()
    if args.merge:
        parts = [json.load(open(p)) for p in args.merge]
        # Runs of one variant and seed made twice keep the entry with more paired comparisons;
        # different seeds of a variant are concatenated.
        runs = {}
        for part in parts:
            for name, entries in part["runs"].items():
                by_seed = {r["seed"]: r for r in runs.get(name, [])}
                for r in entries:
                    if len(r.get("minus", {})) >= len(by_seed.get(r["seed"], {}).get("minus", {})):
                        by_seed[r["seed"]] = r
                runs[name] = [by_seed[s] for s in sorted(by_seed)]
        seeds = sorted({r["seed"] for entries in runs.values() for r in entries})
        command = "; ".join([p["command"] for p in parts] + [
            "python benchmarks/p2_candidate_generation.py --merge " + " ".join(args.merge)])
        print(write(args.out, parts[0]["popularity"], runs, seeds, command))
        return
    names = [n for n in VARIANTS if not args.only or any(o in n for o in args.only)]
    popularity, runs = run_variants(names, args.seeds)
    command = "python " + " ".join(["benchmarks/p2_candidate_generation.py", *sys.argv[1:]])
    print(write(args.out, popularity, runs, args.seeds, command))


if __name__ == "__main__":
    main()
