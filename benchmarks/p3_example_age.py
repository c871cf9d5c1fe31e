"""Example age under P3 (docs/PROTOCOL.md): does the feature earn its place where serving is?

pipelines/simulated_youtube.yaml (P3: one cut for everyone, 7-day validation and test windows,
the generator trained only before the validation window, queries at example age 0 exactly as
the SavedModels serve), trained with and without `example_age` in the tower, seeds 0..2, epoch
chosen on validation map@100. Reported per split: next-watch metrics, the fresh slice (targets
uploaded at most 7 days before the query), true recall, and the age profile of the top 100;
with vs without is paired per seed on the same queries (95% bootstrap intervals).

`--serve-age` scores the same trained models with example age set to other values than 0 (in
days; negative = "after the end of training"), to see whether the serving value matters.
The same pairs are also bucketed by days between the end of training and the query (how stale the
frozen model is when it serves), over the validation and test queries together.
Results: benchmarks/results/p3_example_age.{json,md}.

Run:  .venv/bin/python benchmarks/p3_example_age.py --seeds 0 1 2
"""
import argparse
import dataclasses
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import numpy as np  # noqa: E402

import tfrec  # noqa: E402,F401
from tfrec.config import load_config  # noqa: E402
from tfrec.evaluation.candidates import compare_per_query  # noqa: E402
from tfrec.evaluation.freshness import age_profile, fresh_targets  # noqa: E402
from tfrec.evaluation.next_watch import evaluate_next_watch  # noqa: E402
from tfrec.evaluation.true_affinity import recall_of_true_top_k  # noqa: E402
from tfrec.features.local_driver import build_candidate_examples  # noqa: E402
from tfrec.models.popularity import Popularity  # noqa: E402
from tfrec.pipeline import load_events, simulated_world  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from p1_candidate_generation import variant_config  # noqa: E402

CONFIG = os.path.join(HERE, "..", "pipelines", "simulated_youtube.yaml")
KS = (10, 50, 100)
METRICS = ("recall@10", "recall@100", "map@100")
ALL = ["watch_history", "search_tokens", "demographics", "example_age"]
VARIANTS = {"without example age": ALL[:3], "with example age": ALL}
DAY = 86_400
# Days between the cut (the end of training) and the query: the frozen model's staleness.
GAP_EDGES_DAYS = (0, 1, 3, 7, 10, 14.01)


def figures(score, queries, corpus, videos, world):
    """Metrics, fresh-slice metrics, true recall and age profile of one scorer on one split,
    and the per-query tables (all queries, fresh ones) for pairing."""
    overall, rows = evaluate_next_watch(score, queries, corpus, ks=KS, per_query=True)
    fresh_rows = np.flatnonzero(fresh_targets(queries, videos))
    fresh = queries.take(fresh_rows)
    fresh_fig, fresh_tab = evaluate_next_watch(lambda s, e: score_rows(score, fresh_rows, s, e),
                                               fresh, corpus, ks=KS, per_query=True)
    truth = recall_of_true_top_k(score, queries, corpus, world, ks=KS)
    overall.update({k: v for k, v in truth.items() if k.startswith("true_")})
    return ({"all": overall, "fresh": fresh_fig,
             "age_profile": age_profile(score, queries, corpus, videos)},
            {"all": rows, "fresh": fresh_tab})


def score_rows(score, rows, start, end):
    """Scores of queries[rows[start:end]] from a scorer over all queries (row by row)."""
    return np.stack([score(r, r + 1)[0] for r in rows[start:end]]) if end > start else \
        np.zeros((0, 0))


def model_scorer(model, tower, queries, example_age_days=0.0):
    from tfrec.features.dataset import padded_features
    features = padded_features(queries, tower.max_history, tower.max_search_tokens)
    if "example_age" in features:
        features["example_age"] = np.full_like(features["example_age"],
                                               example_age_days * DAY)
    u = model.query_vectors(features)
    _, table = model.candidate_table()
    return lambda s, e: u[s:e] @ table.T


def run(seeds, serve_ages, epochs=None, age_scale=None, age_path=None):
    base = load_config(CONFIG)
    assert base.evaluation.protocol == "p3", "the simulator's pipeline runs P3"
    events = load_events(base.data, log=lambda *_: None)
    world, videos = simulated_world(base.data), events.videos
    corpus = videos["video_id"].to_numpy()
    examples = build_candidate_examples(events, base.examples, protocol=base.evaluation)
    pop = Popularity(corpus, examples.train_watches["video_id"].to_numpy())
    splits = ("validation", "test")
    popularity = {s: figures(lambda a, b: pop.scores(b - a), getattr(examples, s), corpus,
                             videos, world)[0] for s in splits}
    from tfrec.models.training import train_candidate_generation
    runs = {name: [] for name in VARIANTS}
    per_seed_tables = []
    for seed in seeds:
        tables = {}
        per_seed_tables.append(tables)
        for name, features in VARIANTS.items():
            overrides = {"tower": {"features": features}}
            if age_scale is not None:  # the size of [x, x^2] beside the embeddings
                overrides["tower"]["example_age_scale"] = age_scale
            if age_path is not None:  # where [x, x^2] enters the tower
                overrides["tower"]["example_age_path"] = age_path
            if epochs:  # a quick look (the committed table uses the config's schedule)
                overrides["training"] = {"epochs": epochs}
            config = variant_config(base, overrides, seed)
            cg = config.candidate_generation
            start = time.perf_counter()
            model, result = train_candidate_generation(
                examples, events.users, corpus, cg.tower, cg.softmax, cg.training, ks=KS,
                log=lambda *_: None)
            entry = {"seed": seed, "best_epoch": result["best_epoch"],
                     "seconds": round(time.perf_counter() - start, 1)}
            for split in splits:
                queries = getattr(examples, split)
                entry[split], tables[(name, split)] = figures(
                    model_scorer(model, cg.tower, queries), queries, corpus, videos, world)
                if "example_age" in features:
                    entry[split]["serve_age"] = {
                        str(days): evaluate_next_watch(
                            model_scorer(model, cg.tower, queries, days), queries, corpus,
                            ks=KS) for days in serve_ages}
            runs[name].append(entry)
            print(f"seed {seed} {name}: " + " ".join(
                f"{s} {m}={entry[s]['all'][m]:.4f}" for s in splits for m in METRICS) + " " +
                " ".join(f"{s} fresh recall@100={entry[s]['fresh']['recall@100']:.4f}"
                         for s in splits), flush=True)
        without, with_ = VARIANTS
        runs[without][-1]["with_minus_without"] = {  # compare_per_query: model - baseline
            split: {part: compare_per_query(tables[(with_, split)][part],
                                            tables[(without, split)][part], metrics=METRICS)
                    for part in ("all", "fresh")} for split in splits}
        runs[without][-1]["with_minus_without_by_gap"] = by_gap(
            examples, {v: {s: tables[(v, s)]["all"] for s in splits} for v in VARIANTS})
    return {"popularity": popularity, "runs": runs,
            "with_minus_without_seed_mean": seed_mean_difference(per_seed_tables),
            "windows": dataclasses.asdict(examples.windows),
            "queries": {s: len(getattr(examples, s)) for s in splits}}


def seed_mean_difference(per_seed_tables):
    """{split: {part: {metric: {difference, ci95}}}}: with minus without example age, each
    query's figure averaged over the seeds first (the seeds share the queries), then one paired
    bootstrap over queries: the 3-seed interval of the difference."""
    without, with_ = VARIANTS
    mean = lambda name, split, part: sum(  # noqa: E731
        t[(name, split)][part][list(METRICS)] for t in per_seed_tables) / len(per_seed_tables)
    out = {}
    for split in ("validation", "test"):
        out[split] = {}
        for part in ("all", "fresh"):
            query = per_seed_tables[0][(without, split)][part]["query"]
            out[split][part] = compare_per_query(mean(with_, split, part).assign(query=query),
                                                 mean(without, split, part).assign(query=query),
                                                 metrics=METRICS)
    return out


def by_gap(examples, tables):
    """[{gap, queries, metric: {difference, ci95}}]: with minus without example age over the
    queries of both splits bucketed by days between the cut and the query."""
    import pandas as pd
    cut = examples.windows.validation_start
    without, with_ = VARIANTS
    for split in ("validation", "test"):
        times = np.asarray(getattr(examples, split)["timestamp"], np.float64)
        for v in VARIANTS:
            t = tables[v][split]
            tables[v][split] = t.assign(gap=(times[t["query"].to_numpy()] - cut) / DAY,
                                        split=split)
    both = {v: pd.concat([tables[v][s] for s in ("validation", "test")], ignore_index=True)
            for v in VARIANTS}
    out = []
    for lo, hi in zip(GAP_EDGES_DAYS[:-1], GAP_EDGES_DAYS[1:]):
        keep = (both[without]["gap"] >= lo) & (both[without]["gap"] < hi)
        pick = lambda v, keep=keep: both[v][keep].reset_index(drop=True).assign(  # noqa: E731
            query=np.arange(int(keep.sum())))
        if keep.sum() < 20:
            continue
        out.append({"gap_days": [lo, round(hi)], "queries": int(keep.sum()),
                    **compare_per_query(pick(with_), pick(without), metrics=METRICS)})
    return out


def mean_sd(values):
    v = np.asarray(values, dtype=np.float64)
    return f"{v.mean():.4f} ± {v.std(ddof=1):.4f}" if len(v) > 1 else f"{v.mean():.4f}"


def markdown(out, seeds, command):
    lines = ["Simulated world (`small`), P3 (docs/PROTOCOL.md): the generator trained on the log "
             "up to the validation window, queries at the first watch of each user in the "
             "7-day validation and test windows, example age 0 as served; epoch chosen on "
             f"validation map@100; mean ± sd over seeds {seeds}.", "",
             f"Command: `{command}`", ""]
    cols = [f"{p} {m}" for p in ("all", "fresh") for m in METRICS] + ["true_recall@100"]
    for split in ("test", "validation"):
        pop = out["popularity"][split]
        lines += [f"**{split}** ({pop['all']['queries']} queries scored, "
                  f"{pop['fresh']['queries']} in the fresh slice):", "",
                  "| model | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols),
                  "| popularity | " + " | ".join(
                      f"{pop[c.split()[0]][c.split()[1]]:.4f}" if " " in c else
                      f"{pop['all'][c]:.4f}" for c in cols) + " |"]
        for name, runs in out["runs"].items():
            lines.append(f"| {name} | " + " | ".join(
                mean_sd([r[split][c.split()[0]][c.split()[1]] if " " in c else
                         r[split]["all"][c] for r in runs]) for c in cols) + " |")
        lines.append("")
        diffs = [r["with_minus_without"][split] for r in out["runs"]["without example age"]]
        lines += ["With minus without example age, same queries, 95% paired-bootstrap interval:",
                  "", "| seed | " + " | ".join(f"{p} {m}" for p in ("all", "fresh")
                                                 for m in METRICS) + " |",
                  "|---|" + "---|" * 6]
        pooled = [("seed mean", out["with_minus_without_seed_mean"][split])] \
            if len(seeds) > 1 else []
        for seed, d in [*zip(seeds, diffs), *pooled]:
            lines.append(f"| {seed} | " + " | ".join(
                "{:+.4f} [{:+.4f}, {:+.4f}]".format(d[p][m]["difference"], *d[p][m]["ci95"])
                for p in ("all", "fresh") for m in METRICS) + " |")
        lines.append("")
        profiles = {"popularity": pop["age_profile"], **{
            name: {"recommended_share": np.mean([r[split]["age_profile"]["recommended_share"]
                                                 for r in runs], axis=0).tolist()}
            for name, runs in out["runs"].items()}}
        buckets, targets = pop["age_profile"]["buckets"], pop["age_profile"]["target_share"]
        lines += [f"Age profile ({split}): share of top-100 slots by video age at query time "
                  "(mean over seeds) vs share of targets:", "",
                  "| video age | targets | " + " | ".join(profiles) + " |",
                  "|---|---|" + "---|" * len(profiles)]
        for i, b in enumerate(buckets):
            lines.append(f"| {b} | {targets[i]:.4f} | " + " | ".join(
                f"{p['recommended_share'][i]:.4f}" for p in profiles.values()) + " |")
        serve = [r[split].get("serve_age") for r in out["runs"]["with example age"]]
        if serve and serve[0]:
            lines += ["", f"Serving example age ({split}, the same models; days, negative = "
                      "after the end of training): recall@10 / recall@100 / map@100", "",
                      "| example age served | " + " | ".join(METRICS) + " |",
                      "|---|" + "---|" * len(METRICS)]
            for days in serve[0]:
                lines.append(f"| {days} | " + " | ".join(
                    mean_sd([s[days][m] for s in serve]) for m in METRICS) + " |")
        lines.append("")
    gaps = [r["with_minus_without_by_gap"] for r in out["runs"]["without example age"]]
    lines += ["**By staleness**: with minus without example age over the validation and test "
              "queries together, bucketed by days between the end of training and the query "
              "(95% paired-bootstrap intervals, per seed):", "",
              "| days after the cut | queries | seed | " + " | ".join(METRICS) + " |",
              "|---|---|---|" + "---|" * len(METRICS)]
    for seed, g in zip(seeds, gaps):
        for b in g:
            lines.append(f"| {b['gap_days'][0]}-{b['gap_days'][1]} | {b['queries']} | {seed} | "
                         + " | ".join("{:+.4f} [{:+.4f}, {:+.4f}]".format(
                             b[m]["difference"], *b[m]["ci95"]) for m in METRICS) + " |")
    lines.append("")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--serve-age", type=float, nargs="*", default=[0.0, -3.5, -7.0, -10.5],
                        help="example ages (days) to serve the with-age models at")
    parser.add_argument("--epochs", type=int, help="override the training epochs (a quick look)")
    parser.add_argument("--age-scale", type=float, default=None,
                        help="tower.example_age_scale (default: the config's; 1 = unscaled)")
    parser.add_argument("--age-path", choices=("first_layer", "output_shift"), default=None,
                        help="tower.example_age_path (default: the config's)")
    parser.add_argument("--name", default="p3_example_age", help="result file name")
    parser.add_argument("--out", default=os.path.join(HERE, "results"))
    args = parser.parse_args()
    out = run(args.seeds, args.serve_age, args.epochs, args.age_scale, args.age_path)
    command = "python " + " ".join(["benchmarks/p3_example_age.py", *sys.argv[1:]])
    out["command"] = command
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, f"{args.name}.json"), "w") as f:
        json.dump(out, f, indent=2)
    text = markdown(out, args.seeds, command)
    with open(os.path.join(args.out, f"{args.name}.md"), "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main()
