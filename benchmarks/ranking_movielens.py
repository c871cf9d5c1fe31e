"""The ranker on MovieLens-100K pages built from the candidate generator's retrievals.

MovieLens has no impressions, so `retrieved_impressions` builds them (README, "Ranking"): for each
next-watch example, the true next watch (clicked, watch time = rating) plus NEG negatives drawn
from the generator's top-N at that time. Training pages come from a seeded sample of the training
next-watch examples, validation and test pages from the P1 validation and test queries (one page
per user each; with --positive if_retrieved the true next watch is on the page only when the
generator ranks it in its top-N). The generator is the main config's
(pipelines/movielens_100k.yaml) trained for at most --cg-epochs. Compared on test: rank by the
generator's score u . v, a click-trained LR and the watch-time-weighted LR (with and without the
cg_score feature). Caveat: on training pages the generator has fitted the positives, so cg_score
there is optimistic.

Run: .venv/bin/python benchmarks/ranking_movielens.py [--train-pages 20000]
     [--out benchmarks/results]
"""
import argparse
import json
import os
import sys

import numpy as np

import tfrec  # noqa: F401
from tfrec.config import RankingConfig, load_config
from tfrec.data.fetch import fetch_movielens_100k
from tfrec.data.movielens import read_recbole
from tfrec.evaluation.ranking import evaluate_ranking
from tfrec.features.local_driver import build_candidate_examples
from tfrec.features.ranking_examples import build_ranking_examples
from tfrec.features.retrieved_impressions import (candidate_generation_scores,
                                                  retrieved_impressions)
from tfrec.models.ranking_training import train_ranker
from tfrec.models.training import train_candidate_generation


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--train-pages", type=int, default=20000)
    parser.add_argument("--top-n", type=int, default=50)
    parser.add_argument("--negatives", type=int, default=9)
    parser.add_argument("--cg-epochs", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--positive", default="always", choices=("always", "if_retrieved"))
    parser.add_argument("--out", default="benchmarks/results")
    args = parser.parse_args()
    log = lambda *a: print(*a, flush=True)  # noqa: E731
    config = load_config("pipelines/movielens_100k.yaml")
    cg = config.candidate_generation
    events = read_recbole(fetch_movielens_100k(log=log))
    ex = build_candidate_examples(events, config.examples)
    cg_model, cg_result = train_candidate_generation(
        ex, events.users, events.videos["video_id"].to_numpy(), cg.tower, cg.softmax,
        cg.training.model_copy(update={"epochs": args.cg_epochs}), log=log)
    rows = np.sort(np.random.default_rng(0).choice(len(ex.train), min(args.train_pages,
                                                                      len(ex.train)), False))
    parts = {}
    for name, queries in (("train", ex.train.take(rows)), ("validation", ex.validation),
                          ("test", ex.test)):
        imp = retrieved_impressions(cg_model, queries, cg.tower, events.watches, args.top_n,
                                    args.negatives, seed=1, positive=args.positive)
        parts[name] = build_ranking_examples(events, imp, max_history=cg.tower.max_history)
        parts[name].columns["cg_score"] = candidate_generation_scores(cg_model, parts[name],
                                                                      cg.tower)
        log(f"{name}: {len(parts[name])} impressions")
    test = parts["test"]
    results = [{"model": "candidate-generation score u.v",
                **evaluate_ranking(test, test["cg_score"])}]
    base = RankingConfig(hidden_units=(128,), max_history=cg.tower.max_history,
                         epochs=args.epochs, patience=2, batch_size=1024, learning_rate=0.002)
    runs = (("click-trained LR", base.model_copy(update={"weighted": False})),
            ("weighted LR", base),
            ("weighted LR without cg_score", base.model_copy(update={
                "features": ("video_id", "watch_history", "language", "continuous")})))
    for name, ranking_config in runs:
        _, result = train_ranker(parts["train"], parts["validation"], ranking_config,
                                 events.videos["video_id"], test, log=log)
        results.append({"model": name, **result["test"], "best_epoch": result["best_epoch"],
                        "train_examples_per_second": result["train_examples_per_second"]})
        log(json.dumps(results[-1]))
    out = {"command": " ".join(["python"] + sys.argv), "candidate_generation_test":
           cg_result["test"], "impressions": {k: len(v) for k, v in parts.items()},
           "results": results}
    os.makedirs(args.out, exist_ok=True)
    suffix = "" if args.positive == "always" else f"_{args.positive}"
    with open(os.path.join(args.out, f"ranking_movielens{suffix}.json"), "w") as f:
        json.dump(out, f, indent=2)
    for r in results:
        print(f"{r['model']:<32} weighted per-user loss {r['weighted_per_user_loss']:.4f}  "
              f"click AUC {r['click_auc']:.4f}")


if __name__ == "__main__":
    main()
