"""Ranking quality: watch-time-weighted LR vs click-trained LR vs candidate-generation score,
and the paper's Table-1-style sweep of hidden layers, by weighted per-user loss (docs/PROTOCOL.md).

Data: `--events DIR` (event Parquet files with impressions, e.g. the simulator's; `--true-column`
names the impressions column with the true expected watch time), or by default the clickbait toy
world of the tests (`tests/ranking_fixture.py`: click appeal and watch time per click opposed; NOT
the P2 simulator). Impressions are split by time (80/10/10); the candidate generator is trained on
the watches before the validation period (P1 examples) and its u . v scores the impressions. Every
ranker is trained with the epoch chosen on validation and evaluated on test. Oracles (true
expected watch time, true click probability) bound what any model can reach.

With a true column it also studies calibration (`--calibration-seeds`): the [256] ranker without
cg_score (the simulated pipeline's) with the paper's negatives (not clicked; odds E[T] / (1 - P))
or every impression a negative (odds E[T]), each without and with the Platt scaling fitted on
validation, over seeds.

Run: .venv/bin/python benchmarks/ranking_comparison.py [--events DIR --true-column C]
     [--users 1000 --videos 500] [--out benchmarks/results] [--prefix ranking_comparison]
"""
import argparse
import dataclasses
import json
import os
import sys
import time

import numpy as np

import tfrec  # noqa: F401
from tfrec.config import (ExampleConfig, RankingConfig, SoftmaxConfig, TrainingConfig,
                          UserTowerConfig)
from tfrec.data.schema import read_events
from tfrec.evaluation.ranking import evaluate_ranking
from tfrec.features.local_driver import build_candidate_examples
from tfrec.features.ranking_examples import build_ranking_examples, split_by_time
from tfrec.features.retrieved_impressions import candidate_generation_scores
from tfrec.models.ranking_training import train_ranker
from tfrec.models.training import train_candidate_generation

H = 20
SWEEP = ((), (64,), (128,), (256,), (128, 64), (256, 128), (256, 128, 64))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--events")
    parser.add_argument("--true-column", default="true_expected_watch_time")
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--videos", type=int, default=500)
    parser.add_argument("--pages-per-user", type=int, default=30)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--calibration-seeds", type=int, default=2)
    parser.add_argument("--calibration-only", action="store_true",
                        help="only the click-trained baseline and the calibration study")
    parser.add_argument("--out", default="benchmarks/results")
    parser.add_argument("--prefix", default="ranking_comparison")
    args = parser.parse_args()
    if args.events:
        events, source = read_events(args.events), args.events
    else:
        sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
        from ranking_fixture import simulated_world
        events = simulated_world(n_users=args.users, n_videos=args.videos,
                                 pages_per_user=args.pages_per_user)
        source = f"toy clickbait world (tests/ranking_fixture.py), {args.users} users, " \
            f"{args.videos} videos, {args.pages_per_user} pages of 10 per user"
    true_col = args.true_column if args.true_column in events.impressions.columns else None
    log = lambda *a: print(*a, flush=True)  # noqa: E731

    ranking = build_ranking_examples(events, max_history=H)
    train, validation, test = split_by_time(ranking)
    # The candidate generator sees only watches before the ranker's validation period: otherwise
    # the clicks of validation/test impressions (which became watches) would be its labels.
    cut = int(np.min(validation["timestamp"]))
    tower = UserTowerConfig(features=("watch_history", "example_age"), embedding_dim=32,
                            hidden_units=(64, 32), max_history=H)
    early = dataclasses.replace(events, watches=events.watches[events.watches["timestamp"] < cut])
    cg_examples = build_candidate_examples(early, ExampleConfig(max_history=H))
    cg_model, cg_result = train_candidate_generation(
        cg_examples, events.users, events.videos["video_id"].to_numpy(), tower,
        SoftmaxConfig(loss="full", use_bias=True), TrainingConfig(epochs=5, patience=2),
        log=log)
    for part in (train, validation, test):
        part.columns["cg_score"] = candidate_generation_scores(cg_model, part, tower)
    log(f"impressions: train {len(train)}, validation {len(validation)}, test {len(test)}")

    rows = []

    def add(name, metrics, extra=None):
        row = {"model": name, "weighted_per_user_loss": metrics["weighted_per_user_loss"],
               "click_auc": metrics["click_auc"], **(extra or {})}
        if "calibration" in metrics:
            row["calibration_slope"] = metrics["calibration"]["slope"]
            row["calibration_r2"] = metrics["calibration"]["r2"]
        if "calibration_corrected" in metrics:
            row["corrected_slope"] = metrics["calibration_corrected"]["slope"]
        rows.append(row)
        log(json.dumps(row))

    if true_col:
        add("oracle: true expected watch time", evaluate_ranking(test, test[true_col]))
    if "true_click_probability" in test.columns:
        add("oracle: true click probability",
            evaluate_ranking(test, test["true_click_probability"]))
    add("candidate-generation score u.v", evaluate_ranking(test, test["cg_score"]))
    # The comparison and sweep as first measured: the paper's negatives, no Platt scaling.
    base = RankingConfig(hidden_units=(128,), max_history=H, epochs=args.epochs, patience=2,
                         batch_size=1024, learning_rate=0.002, calibrate=False,
                         selection_metric="weighted_logistic_loss")
    runs = [("click-trained LR (rank by click probability)",
             base.model_copy(update={"weighted": False})),
            ("weighted LR, no cg_score", base.model_copy(update={
                "features": ("video_id", "watch_history", "language", "continuous")}))]
    runs += [(f"weighted LR, hidden {list(h) or 'none'}",
              base.model_copy(update={"hidden_units": h})) for h in SWEEP]

    def fit(config):
        start = time.perf_counter()
        _, result = train_ranker(train, validation, config, events.videos["video_id"], test,
                                 true_col, log=lambda *_: None)
        return result, {"hidden_units": list(config.hidden_units), "weighted": config.weighted,
                        "negatives": config.negatives, "calibrate": config.calibrate,
                        "seed": config.seed, "best_epoch": result["best_epoch"],
                        "logit_calibration": result["logit_calibration"],
                        "train_examples_per_second": result["train_examples_per_second"],
                        "seconds": round(time.perf_counter() - start, 1)}

    for name, config in (runs if not args.calibration_only else runs[:1]):
        result, extra = fit(config)
        add(name, result["test"], extra)
    calibration_rows = []
    if true_col and args.calibration_seeds:
        # The simulated pipeline's ranker (pipelines/simulated_youtube.yaml).
        pipeline = base.model_copy(update={
            "hidden_units": (256,), "batch_size": 4096, "learning_rate": 0.004,
            "features": ("video_id", "watch_history", "language", "continuous")})
        for negatives in ("not_clicked", "all_impressions"):
            for calibrate in (False, True):
                for seed in range(args.calibration_seeds):
                    result, extra = fit(pipeline.model_copy(update={
                        "negatives": negatives, "calibrate": calibrate, "seed": seed}))
                    metrics = result["test"]
                    row = {**extra, "weighted_per_user_loss": metrics["weighted_per_user_loss"],
                           **{f"{k}_{part}": metrics[part][k] if part in metrics else None
                              for part in ("calibration", "calibration_corrected")
                              for k in ("slope", "intercept", "r2", "mean_predicted",
                                        "mean_actual")}}
                    calibration_rows.append(row)
                    log(json.dumps(row))
    out = {"source": source, "impressions": {"train": len(train), "validation": len(validation),
                                             "test": len(test)},
           "click_rate": float(np.mean(ranking["clicked"])),
           "candidate_generation_test": cg_result["test"], "rows": rows,
           "calibration_rows": calibration_rows,
           "command": " ".join(["python"] + sys.argv)}
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, f"{args.prefix}.json"), "w") as f:
        json.dump(out, f, indent=2)
    click = next(r for r in rows if r["model"].startswith("click-trained"))
    lines = [f"# Ranking comparison ({source})", "",
             f"Test impressions: {len(test)}; click rate {out['click_rate']:.3f}. Command: "
             f"`{out['command']}`", "",
             f"Rankers: batch {base.batch_size}, learning rate {base.learning_rate}, negatives "
             f"{base.negatives}, Platt scaling {base.calibrate}, epoch chosen by "
             f"{base.selection_metric}; hidden [128] unless named.", "",
             "| model | weighted per-user loss | vs click-trained | click AUC | calibration slope"
             " (R²) | slope with (1-P) |", "|---|---|---|---|---|---|"]
    for r in rows:
        rel = r["weighted_per_user_loss"] / click["weighted_per_user_loss"] - 1
        cal = f"{r['calibration_slope']:.3f} ({r['calibration_r2']:.3f})" \
            if "calibration_slope" in r else ""
        lines.append(f"| {r['model']} | {r['weighted_per_user_loss']:.4f} | {rel:+.1%} | "
                     f"{r['click_auc']:.4f} | {cal} | "
                     f"{r.get('corrected_slope', float('nan')):.3f} |")
    lines += calibration_table(calibration_rows)
    with open(os.path.join(args.out, f"{args.prefix}.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


def calibration_table(rows):
    """Markdown lines: mean ± std over seeds of each (negatives, calibrate) setting."""
    if not rows:
        return []
    lines = ["", "## Calibration of exp(logit) against the true expected watch time (test)", "",
             "Ranker [256] without cg_score, batch 4096, learning rate 0.004 (the simulated "
             "pipeline's); mean ± std over seeds. Slope and intercept of "
             "true E[T] on predicted (calibrated: 1 and 0), R², mean predicted vs true (s). "
             "'with (1-P)' is exp(logit)·(1 − P̂) from the click head.", "",
             "| negatives | Platt scaling | seeds | weighted per-user loss | slope | intercept | "
             "R² | mean predicted / true | slope with (1-P) |",
             "|---|---|---|---|---|---|---|---|---|"]

    def stat(values, fmt):
        values = [v for v in values if v is not None]
        return f"{np.mean(values):{fmt}} ± {np.std(values):{fmt}}" if values else ""

    for negatives in ("not_clicked", "all_impressions"):
        for calibrate in (False, True):
            group = [r for r in rows if r["negatives"] == negatives and r["calibrate"] == calibrate]
            if not group:
                continue

            def col(key, fmt=".3f", group=group):
                return stat([r[key] for r in group], fmt)

            lines.append(f"| {negatives} | {'yes' if calibrate else 'no'} | {len(group)} | "
                         f"{col('weighted_per_user_loss', '.4f')} | {col('slope_calibration')} | "
                         f"{col('intercept_calibration', '.2f')} | {col('r2_calibration')} | "
                         f"{col('mean_predicted_calibration', '.1f')} / "
                         f"{col('mean_actual_calibration', '.1f')} | "
                         f"{col('slope_calibration_corrected')} |")
    return lines


if __name__ == "__main__":
    main()
