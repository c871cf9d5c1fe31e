"""P1 (docs/PROTOCOL.md) table of candidate generation on MovieLens-100K: losses, feature ablation.

Every variant is the main pipeline config (pipelines/movielens_100k.yaml) with a few overrides,
trained with the epoch chosen on validation and reported on test, mean and spread over seeds,
beside popularity. Results: benchmarks/results/p1_candidate_generation.{json,md}.

Run:  .venv/bin/python benchmarks/p1_candidate_generation.py                 # the committed table
      .venv/bin/python benchmarks/p1_candidate_generation.py --only sampled --seeds 0
      .venv/bin/python benchmarks/p1_candidate_generation.py --variant \
          'try={"softmax": {"num_negatives": 1024}}' --seeds 0 --out /tmp/p1
      .venv/bin/python benchmarks/p1_candidate_generation.py --variant \
          'streaming={"examples": {"shards": 4}}' --out /tmp/p1   # trains from TFRecord shards
"""
import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import numpy as np  # noqa: E402

import tfrec  # noqa: E402,F401
from tfrec.config import load_config, parse_config, to_dict  # noqa: E402
from tfrec.evaluation.next_watch import evaluate_next_watch  # noqa: E402
from tfrec.features.example_records import write_split  # noqa: E402
from tfrec.features.local_driver import build_candidate_examples  # noqa: E402
from tfrec.models.popularity import Popularity  # noqa: E402
from tfrec.pipeline import load_events  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
MAIN = os.path.join(HERE, "..", "pipelines", "movielens_100k.yaml")
METRICS = ("recall@10", "recall@50", "recall@100", "ndcg@10", "map@100")

# name -> overrides of the `candidate_generation` section (and optionally `examples`).
LOSSES = {
    "full softmax": {"softmax": {"loss": "full"}},
    "sampled softmax (logQ)": {"softmax": {"loss": "sampled"}},
    "in-batch (logQ)": {"softmax": {"loss": "in_batch"}},
    "mixed negatives (logQ)": {"softmax": {"loss": "mixed"}},
}
ABLATION = {
    "history only": {"tower": {"features": ["watch_history"]}},
    "+ demographics": {"tower": {"features": ["watch_history", "demographics"]}},
    "+ example age": {"tower": {"features": ["watch_history", "demographics", "example_age"]}},
    "+ example age, depth 0": {"tower": {"features": ["watch_history", "demographics",
                                                      "example_age"], "hidden_units": [64]}},
    "+ example age, depth 3": {"tower": {"features": ["watch_history", "demographics",
                                                      "example_age"],
                                         "hidden_units": [256, 128, 64]}},
}


def merge(base, overrides):
    out = dict(base)
    for key, value in overrides.items():
        out[key] = merge(base.get(key, {}), value) if isinstance(value, dict) else value
    return out


def variant_config(base_config, overrides, seed):
    data = to_dict(base_config)
    data = merge(data, {k: v for k, v in overrides.items() if k == "examples"})
    data["candidate_generation"] = merge(
        data["candidate_generation"],
        merge({k: v for k, v in overrides.items() if k != "examples"},
              {"training": {"seed": seed}}))
    return parse_config(data, "variant")


def summarise(runs):
    out = {}
    for metric in METRICS:
        values = np.array([r["test"][metric] for r in runs])
        out[metric] = {"mean": float(values.mean()), "std": float(values.std(ddof=1))
                       if len(values) > 1 else 0.0}
    out["best_epoch"] = [r["best_epoch"] for r in runs]
    out["train_examples_per_second"] = float(np.mean([r["train_examples_per_second"]
                                                      for r in runs]))
    return out


def markdown(results, popularity, seeds, command):
    lines = [f"Test figures, P1 protocol (docs/PROTOCOL.md), MovieLens-100K, epoch chosen on "
             f"validation map@100; mean ± std over seeds {seeds}.", "",
             f"Command: `{command}`", "",
             "| variant | " + " | ".join(METRICS) + " | best epochs | train ex/s |",
             "|---|" + "---|" * (len(METRICS) + 2)]
    lines.append("| popularity | " + " | ".join(f"{popularity[m]:.4f}" for m in METRICS)
                 + " | - | - |")
    for name, s in results.items():
        lines.append(f"| {name} | " + " | ".join(
            f"{s[m]['mean']:.4f} ± {s[m]['std']:.4f}" for m in METRICS)
            + f" | {s['best_epoch']} | {s['train_examples_per_second']:.0f} |")
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--only", nargs="*", help="substrings of variant names to run")
    parser.add_argument("--variant", action="append", default=[],
                        help="extra variant NAME=JSON overrides (replaces the built-in list)")
    parser.add_argument("--out", default=os.path.join(HERE, "results"))
    parser.add_argument("--history", action="store_true",
                        help="keep each run's per-epoch history (loss, validation, seconds)")
    parser.add_argument("--merge", nargs="+", metavar="JSON",
                        help="combine result files of runs made in parallel (no training)")
    args = parser.parse_args()
    if args.merge:
        return merge_results(args.merge, args.out)
    base = load_config(MAIN)
    variants = {**LOSSES, **ABLATION}
    if args.variant:
        variants = dict(v.split("=", 1) for v in args.variant)
        variants = {k: json.loads(v) for k, v in variants.items()}
    if args.only:
        variants = {k: v for k, v in variants.items() if any(o in k for o in args.only)}

    from tfrec.models.training import train_candidate_generation
    events = load_events(base.data, log=lambda *_: None)
    corpus = events.videos["video_id"].to_numpy()
    cache = {}
    results, raw, done = {}, {}, {}
    popularity = None
    for name, overrides in variants.items():
        # A variant identical to one already run (e.g. an ablation row equal to the main config)
        # reuses its runs rather than training again.
        resolved = json.dumps(to_dict(variant_config(base, overrides, 0)), sort_keys=True)
        if resolved in done:
            results[name], raw[name] = results[done[resolved]], {
                "overrides": overrides, "same_as": done[resolved]}
            print(f"{name}: same configuration as {done[resolved]!r}", flush=True)
            continue
        done[resolved] = name
        runs = []
        for seed in args.seeds:
            config = variant_config(base, overrides, seed)
            key = json.dumps(config.examples.model_dump(), sort_keys=True)
            if key not in cache:
                cache[key] = build_candidate_examples(events, config.examples)
                if config.examples.shards:  # train by streaming, as the examples stage does
                    folder = tempfile.mkdtemp(prefix="p1_shards_")
                    write_split(cache[key].train, folder, "train", config.examples.shards)
                    cache[key] = dataclasses.replace(cache[key], train_shards=folder)
            examples = cache[key]
            if popularity is None:
                pop = Popularity(corpus, examples.train_watches["video_id"])
                # pop bound now: the scorer is called only inside this evaluation.
                popularity = evaluate_next_watch(lambda s, e, pop=pop: pop.scores(e - s),
                                                 examples.test, corpus)
            cg = config.candidate_generation
            start = time.perf_counter()
            _, result = train_candidate_generation(examples, events.users, corpus, cg.tower,
                                                   cg.softmax, cg.training,
                                                   log=lambda *_: None)
            result["seconds"] = round(time.perf_counter() - start, 1)
            runs.append(result)
            print(f"{name} seed {seed}: test " + " ".join(
                f"{m}={result['test'][m]:.4f}" for m in METRICS) +
                f" (best epoch {result['best_epoch']}, {result['seconds']}s)", flush=True)
        results[name] = summarise(runs)
        raw[name] = {"overrides": overrides, "runs": [{k: v for k, v in r.items()
                                                       if k != "history" or args.history}
                                                      for r in runs]}
        write(args.out, args.seeds, popularity, results, raw)  # after every variant: no loss
    print(write(args.out, args.seeds, popularity, results, raw))


def merge_results(paths, out):
    """Combine result files (e.g. losses and ablation run in two processes) in table order; a
    variant whose configuration equals another's (the ablation row that is the main config)
    takes that variant's runs."""
    parts = [json.load(open(p)) for p in paths]
    base = load_config(MAIN)
    results, raw, by_config = {}, {}, {}
    for part in parts:
        for name, summary in part["summary"].items():
            results[name], raw[name] = summary, part["raw"][name]
            by_config[json.dumps(to_dict(variant_config(base, raw[name]["overrides"], 0)),
                                 sort_keys=True)] = name
    ordered_results, ordered_raw = {}, {}
    for name, overrides in {**LOSSES, **ABLATION}.items():
        same = by_config.get(json.dumps(to_dict(variant_config(base, overrides, 0)),
                                        sort_keys=True))
        if same:
            ordered_results[name] = results[same]
            ordered_raw[name] = raw[same] if same == name else {"overrides": overrides,
                                                                 "same_as": same}
    command = "; ".join([p["command"] for p in parts] + [
        "python benchmarks/p1_candidate_generation.py --merge " + " ".join(paths)])
    print(write(out, parts[0]["seeds"], parts[0]["popularity"], ordered_results, ordered_raw,
                command))


def write(out, seeds, popularity, results, raw, command=None):
    """Write the JSON and the Markdown table; returns the table."""
    command = command or "python " + " ".join(["benchmarks/p1_candidate_generation.py",
                                               *sys.argv[1:]])
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "p1_candidate_generation.json"), "w") as f:
        json.dump({"command": command, "seeds": seeds, "popularity": popularity,
                   "summary": results, "raw": raw}, f, indent=2)
    table = markdown(results, popularity, seeds, command)
    with open(os.path.join(out, "p1_candidate_generation.md"), "w") as f:
        f.write(table)
    return table


if __name__ == "__main__":
    main()
