"""Seeded user samples for evaluation (tfrec.evaluation.sampling): the same users for the same
seed, every user when there are fewer, standard errors that predict how far a sample's figure
falls from the full figure; and a tiny run that validates, tests and tunes ScaNN on samples."""
import json

import numpy as np
import pandas as pd
import pytest

from conftest import make_events, three_taste_watches
from tiny_pipeline import write_tiny_pipeline
from tfrec.config import load_config
from tfrec.data.schema import write_events
from tfrec.evaluation.candidates import evaluate_candidates
from tfrec.evaluation.next_watch import evaluate_next_watch
from tfrec.evaluation.sampling import sample_users, standard_errors
from tfrec.features.example_set import ExampleSet
from tfrec.features.ragged import Ragged
from tfrec.pipeline import run_pipeline


def test_same_seed_same_users_whatever_the_query_order():
    users = np.array([f"u{i}" for i in range(500)], dtype=object)
    a = sample_users(users, 40, seed=3)
    shuffled = np.random.default_rng(0).permutation(users)
    b = sample_users(shuffled, 40, seed=3)
    assert a.users == 40 and a.of_users == 500 and not a.is_all
    assert set(users[a.rows]) == set(shuffled[b.rows])
    assert list(a.rows) == sorted(a.rows)
    other = sample_users(users, 40, seed=4)
    assert len(set(users[a.rows]) & set(users[other.rows])) < 20  # another seed, other users


def test_all_queries_in_order_when_there_are_not_more_users():
    users = np.array(["b", "a", "b", "c"], dtype=object)  # 3 users, one with two queries
    sample = sample_users(users, 3, seed=0)
    assert sample.rows.tolist() == [0, 1, 2, 3] and sample.is_all
    assert sample.describe() == {"users": 3, "of_users": 3, "seed": 0, "all": True}
    two = sample_users(users, 2, seed=0)
    assert two.users == 2 and len(set(users[two.rows])) == 2
    assert ("b" in users[two.rows]) == (len(two.rows) == 3)  # a user's queries come together


def test_standard_error_predicts_the_spread_of_sampled_figures():
    rng = np.random.default_rng(0)
    users = np.array([f"u{i}" for i in range(4000)], dtype=object)
    figure = (rng.random(4000) < 0.2).astype(np.float64)  # a recall@K-like per-query hit
    table = pd.DataFrame({"query": np.arange(4000), "recall@10": figure})
    means, errors = [], []
    for seed in range(300):
        rows = sample_users(users, 100, seed).rows
        means.append(figure[rows].mean())
        errors.append(standard_errors(table.iloc[rows])["recall@10"])
    sd = figure.std(ddof=1)
    assert np.mean(errors) == pytest.approx(sd / np.sqrt(100), rel=0.05)
    # The spread of the sampled means over seeds is what the standard error says it is.
    assert np.std(means) == pytest.approx(np.mean(errors), rel=0.15)
    assert abs(np.mean(means) - figure.mean()) < 3 * sd / np.sqrt(100 * 300)


def test_sampled_test_figures_are_the_full_figures_of_those_queries():
    rng = np.random.default_rng(1)
    n, v = 300, 40
    corpus = np.array([f"v{j}" for j in range(v)], dtype=object)
    queries = ExampleSet({
        "label": corpus[rng.integers(0, v, n)],
        "user_id": np.array([f"u{i}" for i in range(n)], dtype=object),
        "exclusions": Ragged(corpus[rng.integers(0, v, 3 * n)], np.full(n, 3))})
    scores = rng.normal(size=(n, v))

    class Examples:
        validation = test = queries

    def score(q, s, e):  # the sampled query set's own rows, found by user id
        rows = pd.Index(queries["user_id"]).get_indexer(q["user_id"])
        return scores[rows[s:e]]

    sample = sample_users(queries["user_id"], 120, seed=7)
    result, tables = evaluate_candidates(score, Examples(), corpus, ks=(10,), splits=("test",),
                                         per_query=True, samples={"test": sample})
    _, full = evaluate_next_watch(lambda s, e: scores[s:e], queries, corpus, ks=(10,),
                                  per_query=True)
    sampled = full.set_index("query").loc[tables["test"]["query"]]
    assert set(tables["test"]["query"]) <= set(sample.rows)  # rows of the full query set
    assert tables["test"]["recall@10"].tolist() == sampled["recall@10"].tolist()
    test = result["test"]
    assert test["recall@10"] == pytest.approx(sampled["recall@10"].mean())
    assert test["sample"] == {"users": 120, "of_users": n, "seed": 7, "all": False}
    assert test["standard_error"]["recall@10"] == pytest.approx(
        sampled["recall@10"].std(ddof=1) / np.sqrt(test["queries"]))


def test_tiny_run_validates_tests_and_tunes_scann_on_declared_samples(tmp_path):
    write_events(make_events(three_taste_watches()), str(tmp_path / "events"))
    config = write_tiny_pipeline(
        tmp_path / "tiny.yaml", tmp_path / "events", tmp_path / "saved_models",
        {"evaluation": {"validation_users": 12, "test_users": 20, "seed": 5},
         "export": {"tuning_queries": 10, "recall_queries": 15}})
    run_pipeline(load_config(config), runs_dir=str(tmp_path / "runs"), log=lambda *_: None,
                 report=False)
    metrics = json.loads((tmp_path / "runs" / "tiny" / "metrics.json").read_text())
    test = pd.read_parquet(tmp_path / "runs" / "tiny" / "examples" / "test.parquet")
    validation_users = sample_users(
        pd.read_parquet(tmp_path / "runs" / "tiny" / "examples" / "validation.parquet")[
            "user_id"].to_numpy(), 12, 5)
    for source in ("popularity", "retrieval"):
        figures = metrics[source]
        assert figures["validation"]["sample"] == {"users": 12, "of_users": 30, "seed": 5,
                                                   "all": False}
        validation = figures["validation"]
        assert validation["queries"] + validation["rewatch_targets_skipped"] == \
            len(validation_users.rows) == 12
        assert figures["test"]["sample"]["users"] == 20
        assert figures["test"]["queries"] + figures["test"]["rewatch_targets_skipped"] == 20
        assert set(figures["test"]["standard_error"]) >= {"recall@10", "map@100"}
        assert "standard_error" not in figures["validation"] or \
            figures["validation"]["standard_error"]["recall@10"] is not None
    per_query = pd.read_parquet(tmp_path / "runs" / "tiny" / "popularity" /
                                "test_per_query.parquet")
    # The per-query rows are rows of the whole test set: the sampled users' scored queries.
    assert len(per_query) == metrics["popularity"]["test"]["queries"]
    assert set(test["user_id"].to_numpy()[per_query["query"]]) <= set(
        test["user_id"].to_numpy()[sample_users(test["user_id"].to_numpy(), 20, 5).rows])
    ann = metrics["ann"]
    assert ann["tuning_queries"] == 10 and ann["queries"] == 15
    assert ann["measured_on"] == "test (not tuned on)"
    assert ann["held_out_sample"]["users"] == 15 and ann["tuning_sample"]["users"] == 10
