"""How far the paper's odds E[T] / (1 - P) are from E[T] in a simulated world: the calibration
(slope of true E[T] on the prediction) of the *true* E[T] / (1 - P), i.e. the best any ranker
trained on the paper's negatives can reach without a correction.

Run: .venv/bin/python benchmarks/oracle_odds_calibration.py --events /tmp/sim_small
"""
import argparse
import json

import pandas as pd

from tfrec.evaluation.ranking import calibration


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", required=True, help="simulator output folder")
    args = parser.parse_args()
    imp = pd.read_parquet(f"{args.events}/impressions.parquet",
                          columns=["clicked", "true_click_probability", "true_expected_watch_time"])
    p, expected = imp["true_click_probability"], imp["true_expected_watch_time"]
    cal = calibration(expected / (1 - p), expected)
    print(json.dumps({"impressions": len(imp), "click_rate": float(imp["clicked"].mean()),
                      "max_true_click_probability": float(p.max()),
                      "slope": cal["slope"], "r2": cal["r2"]}))


if __name__ == "__main__":
    main()
