"""Both pipelines under both protocols (docs/PROTOCOL.md P1/P2 and P3), whole runs.

The shipped pipelines run MovieLens on P1 and the simulator on P3; benchmarks/configs/ holds the
other two combinations. This script reads the four runs' metrics.json (run them first) and writes
benchmarks/results/protocol_combinations.{json,md}: per run, the generator and popularity on test
with query counts, skipped re-watches and the paired interval, and the ranker against the
generator's order on the same test pages.

Run:  .venv/bin/tfrec run pipelines/movielens_100k.yaml
      .venv/bin/tfrec run pipelines/simulated_youtube.yaml
      .venv/bin/tfrec run benchmarks/configs/movielens_100k_p3.yaml
      .venv/bin/tfrec run benchmarks/configs/simulated_youtube_p2.yaml
      .venv/bin/python benchmarks/protocol_combinations.py
"""
import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))
RUNS = (("movielens_100k", "MovieLens", "P1"), ("movielens_100k_p3", "MovieLens", "P3"),
        ("simulated_youtube_p2", "simulator (small)", "P2"),
        ("simulated_youtube", "simulator (small)", "P3"))


def interval(c):
    return "{:+.4f} [{:+.4f}, {:+.4f}]".format(c["difference"], *c["ci95"])


def row(name, data, protocol, metrics):
    ret, pop = metrics["retrieval"]["test"], metrics["popularity"]["test"]
    rk = metrics.get("ranking", {})
    order = rk.get("ranker_vs_generator_order")
    gen = rk.get("baselines", {}).get("candidate_generation_score", {})
    return {
        "run": name, "data": data, "protocol": protocol, "test_queries": ret["queries"],
        "rewatch_targets_skipped": ret["rewatch_targets_skipped"],
        "generator": {m: ret[m] for m in ("recall@10", "recall@100", "map@100")},
        "popularity": {m: pop[m] for m in ("recall@10", "recall@100", "map@100")},
        "generator_minus_popularity": metrics["retrieval"]["retrieval_vs_popularity"],
        "ranker_loss": rk.get("test", {}).get("weighted_per_user_loss"),
        "generator_order_loss": gen.get("weighted_per_user_loss"),
        "ranker_vs_generator_order": order, "ranker_source": rk.get("source"),
    }


def main():
    rows = []
    for name, data, protocol in RUNS:
        path = os.path.join(HERE, "..", "runs", name, "metrics.json")
        with open(path) as f:
            rows.append(row(name, data, protocol, json.load(f)))
    lines = ["Both pipelines under both protocols, whole runs (seed 0). Test figures; the ranker "
             "column is the generator's order minus the ranker's in weighted per-user loss on the "
             "same test pages (positive = the ranker orders better), with 95% paired-bootstrap "
             "intervals.", "",
             "| data | protocol | test queries (re-watches skipped) | generator Recall@10 | "
             "popularity Recall@10 | generator - popularity Recall@10 | ranker loss | "
             "generator order loss | generator order - ranker |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        order = r["ranker_vs_generator_order"]
        lines.append(
            f"| {r['data']} | {r['protocol']} | {r['test_queries']:,} "
            f"({r['rewatch_targets_skipped']}) | {r['generator']['recall@10']:.4f} | "
            f"{r['popularity']['recall@10']:.4f} | "
            f"{interval(r['generator_minus_popularity']['recall@10'])} | "
            + (f"{r['ranker_loss']:.4f} | {r['generator_order_loss']:.4f} | {interval(order)} "
               f"({order['pages']:,} pages) |" if order else "- | - | no cg_score feature |"))
    lines += ["", "Ranker training pages per run:", ""]
    lines += [f"- {r['data']} {r['protocol']}: {r['ranker_source']}" for r in rows]
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    with open(os.path.join(HERE, "results", "protocol_combinations.json"), "w") as f:
        json.dump(rows, f, indent=2)
    text = "\n".join(lines) + "\n"
    with open(os.path.join(HERE, "results", "protocol_combinations.md"), "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main()
