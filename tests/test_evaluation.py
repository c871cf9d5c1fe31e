import numpy as np
import pytest

import pandas as pd

from tfrec.evaluation.exact_scoring import Exclusions, target_ranks as chunked_target_ranks
from tfrec.evaluation.next_watch import evaluate_next_watch, expected_rank_metrics
from tfrec.features.example_set import ExampleSet
from tfrec.features.ragged import Ragged
from tfrec.models.popularity import Popularity


def target_ranks(scores, targets, excluded):
    """(greater, ties) of dense [Q, N] scores with a dense [Q, N] bool exclusion mask."""
    rows, cols = np.nonzero(excluded)
    exclusions = Exclusions(Ragged(cols, np.bincount(rows, minlength=len(scores))),
                            pd.Index(np.arange(scores.shape[1])))
    return chunked_target_ranks(lambda s, e: scores[s:e], targets, exclusions, scores.shape[1])


def _queries(labels, exclusions):
    lengths = np.array([len(e) for e in exclusions], dtype=np.int64)
    values = np.array([v for e in exclusions for v in e], dtype=object)
    return ExampleSet({"label": np.array(labels, dtype=object),
                       "exclusions": Ragged(values, lengths)})


def test_metrics_of_distinct_ranks_by_hand():
    m = expected_rank_metrics(np.array([0, 3, 12, 150]), np.zeros(4, int), ks=(10, 100))
    assert m["recall@10"].tolist() == [1, 1, 0, 0]
    assert m["recall@100"].tolist() == [1, 1, 1, 0]
    assert m["ndcg@10"] == pytest.approx([1.0, 1 / np.log2(5), 0, 0])
    assert m["map@100"] == pytest.approx([1.0, 1 / 4, 1 / 13, 0])


def test_ties_count_as_the_expectation_of_a_random_tie_break():
    # Target tied with 3 others just after 8 higher ones: rank uniform on {8, 9, 10, 11}.
    m = expected_rank_metrics(np.array([8]), np.array([3]), ks=(10,))
    assert m["recall@10"][0] == pytest.approx(0.5)
    assert m["ndcg@10"][0] == pytest.approx((1 / np.log2(10) + 1 / np.log2(11)) / 4)
    assert m["map@100"][0] == pytest.approx((1 / 9 + 1 / 10 + 1 / 11 + 1 / 12) / 4)


def test_target_ranks_ignore_excluded_but_never_the_target():
    scores = np.array([[5.0, 4.0, 4.0, 9.0, 1.0]])
    excluded = np.array([[False, False, False, True, False]])
    greater, ties = target_ranks(scores, np.array([1]), excluded)
    assert (greater.tolist(), ties.tolist()) == ([1], [1])  # 9.0 excluded; 5.0 above; one tie
    excluded[0, 1] = True  # the target itself is "excluded" (a re-watch): still ranked
    assert target_ranks(scores, np.array([1]), excluded)[0].tolist() == [1]


def test_evaluate_next_watch_end_to_end_by_hand():
    corpus = np.array(["a", "b", "c", "d"], dtype=object)
    scores = np.array([[4.0, 3.0, 2.0, 1.0], [4.0, 3.0, 2.0, 1.0]])
    queries = _queries(["c", "d"], [["a"], []])
    m = evaluate_next_watch(lambda s, e: scores[s:e], queries, corpus, ks=(1, 2), max_cells=4)
    # Query 1: a excluded -> c at rank 1 (0-based). Query 2: d at rank 3.
    assert m["recall@1"] == 0 and m["recall@2"] == 0.5
    assert m["map@100"] == pytest.approx((1 / 2 + 1 / 4) / 2)
    assert m["queries"] == 2


def test_errors_for_unknown_target_and_bad_shapes():
    corpus = np.array(["a", "b"], dtype=object)
    with pytest.raises(ValueError, match="not in the corpus"):
        evaluate_next_watch(lambda s, e: np.zeros((e - s, 2)), _queries(["z"], [[]]), corpus)
    with pytest.raises(ValueError, match="shape"):
        evaluate_next_watch(lambda s, e: np.zeros((e - s, 3)), _queries(["a"], [[]]), corpus)
    with pytest.raises(ValueError, match="duplicate"):
        evaluate_next_watch(lambda s, e: np.zeros((e - s, 2)), _queries(["a"], [[]]),
                            np.array(["a", "a"]))


def test_popularity_counts_and_top_k():
    model = Popularity(["a", "b", "c"], ["b", "b", "c", "x"])
    assert model.counts.tolist() == [0, 2, 1]
    assert model.top_k(2).tolist() == ["b", "c"]
    assert model.scores(3).shape == (3, 3)


def test_popularity_beats_random_on_movielens(ml100k_dir):
    from tfrec.data.movielens import read_recbole
    from tfrec.features.local_driver import build_candidate_examples
    events = read_recbole(ml100k_dir)
    ex = build_candidate_examples(events)
    corpus = events.videos["video_id"].to_numpy()
    pop = Popularity(corpus, ex.train_watches["video_id"])
    m = evaluate_next_watch(lambda s, e: pop.scores(e - s), ex.test, corpus)
    rng = np.random.default_rng(0)
    rand = evaluate_next_watch(lambda s, e: rng.random((e - s, len(corpus))), ex.test, corpus)
    assert m["recall@10"] > 5 * rand["recall@10"]
    assert 0.05 < m["recall@10"] < 0.15  # known range for ML-100K leave-last-out popularity
    assert rand["recall@100"] == pytest.approx(100 / 1580, abs=0.03)


# --- the re-watch rule -------------------------------------------------------------------------

def _rewatch_case():
    """Five videos, popularity a > b > c > d > e; queries 1 and 2 have re-watch targets."""
    corpus = np.array(["a", "b", "c", "d", "e"], dtype=object)
    queries = _queries(["c", "d", "e", "a"], [["a"], ["d", "b"], ["e"], []])
    popularity = np.tile([5.0, 4.0, 3.0, 2.0, 1.0], (4, 1))
    watched = np.zeros((4, 5), dtype=bool)  # the boost goes to every video already watched
    for row, seen in enumerate([["a"], ["d", "b"], ["e"], []]):
        watched[row, [list(corpus).index(v) for v in seen]] = True
    return corpus, queries, popularity, popularity + 100.0 * watched, watched


def test_rewatch_targets_found_exactly():
    from tfrec.evaluation.next_watch import rewatch_targets
    _, queries, *_ = _rewatch_case()
    assert rewatch_targets(queries).tolist() == [False, True, True, False]
    assert rewatch_targets(_queries([], [])).tolist() == []


def test_boosting_watched_videos_gains_nothing_under_the_rewatch_rule():
    corpus, queries, popularity, boosted, watched = _rewatch_case()
    # The rule before: every query scored, the target eligible even when watched before.
    targets = np.array([2, 3, 4, 0])
    before = {name: expected_rank_metrics(*target_ranks(s, targets, watched), ks=(1, 2))
              for name, s in (("popularity", popularity), ("boosted", boosted))}
    # Popularity ranks the targets 1, 2, 4, 0; the boost lifts both re-watches to rank 0.
    assert before["popularity"]["recall@1"].mean() == 0.25
    assert before["boosted"]["recall@1"].mean() == 0.75  # the boost "won" +0.5
    pop, pop_rows = evaluate_next_watch(lambda s, e: popularity[s:e], queries, corpus, ks=(1, 2),
                                        max_cells=5, per_query=True)
    boost, boost_rows = evaluate_next_watch(lambda s, e: boosted[s:e], queries, corpus,
                                            ks=(1, 2), max_cells=5, per_query=True)
    assert pop == boost  # the boost only moves excluded videos now
    # Scored: query 0 (c behind b: rank 1) and query 3 (a: rank 0).
    assert pop["recall@1"] == 0.5 and pop["recall@2"] == 1.0
    assert pop["map@100"] == pytest.approx((1 / 2 + 1) / 2)
    assert pop["queries"] == 2 and pop["rewatch_targets_skipped"] == 2
    assert pop_rows["query"].tolist() == [0, 3] and pop_rows["recall@1"].tolist() == [0.0, 1.0]
    from tfrec.evaluation.candidates import compare_per_query
    paired = compare_per_query(boost_rows, pop_rows, metrics=("recall@1", "map@100"))
    assert paired["recall@1"] == {"difference": 0.0, "ci95": [0.0, 0.0]}
    # The default result is the dict alone, with the same keys as before plus the skip count.
    assert set(pop) == {"recall@1", "recall@2", "ndcg@10", "map@100", "queries",
                        "rewatch_targets_skipped"}


def test_every_target_a_rewatch_scores_nothing():
    corpus = np.array(["a", "b"], dtype=object)
    m = evaluate_next_watch(lambda s, e: np.zeros((e - s, 2)), _queries(["a"], [["a"]]), corpus,
                            ks=(1,))
    assert m["queries"] == 0 and m["rewatch_targets_skipped"] == 1 and np.isnan(m["recall@1"])


class _World:
    """The two things recall_of_true_top_k reads from a simulator World."""

    def __init__(self, affinity):
        self.affinity = np.asarray(affinity, np.float64)  # [users, videos]
        self.upload = np.zeros(self.affinity.shape[1])

    def affinity_matrix(self, users, videos):
        return self.affinity[np.ix_(users, videos)]


def test_true_recall_skips_the_same_queries():
    from tfrec.evaluation.true_affinity import recall_of_true_top_k
    corpus = np.array(["v0", "v1", "v2"], dtype=object)
    queries = _queries(["v2", "v1"], [["v0"], ["v1"]])  # the second target is a re-watch
    queries.columns["user_id"] = np.array(["u0", "u1"], dtype=object)
    queries.columns["timestamp"] = np.array([10, 10])
    world = _World([[0.0, 1.0, 0.5], [0.0, 1.0, 0.5]])  # truth (v0 excluded for u0): v1
    model = np.array([[0.0, 0.0, 1.0], [0.0, 0.0, 1.0]])  # its top 1: v2, a miss for both
    got = recall_of_true_top_k(lambda s, e: model[s:e], queries, corpus, world, ks=(1,))
    assert got == {"true_recall@1": 0.0, "queries": 1, "rewatch_targets_skipped": 1}
    nw = evaluate_next_watch(lambda s, e: model[s:e], queries, corpus, ks=(1,))
    assert (nw["queries"], nw["rewatch_targets_skipped"]) == (1, 1)


# --- paired bootstrap --------------------------------------------------------------------------

def test_bootstrap_of_a_constant_difference_is_that_value_with_zero_width():
    from tfrec.evaluation.bootstrap import paired_bootstrap
    b = np.random.default_rng(3).random(50)
    assert paired_bootstrap(b + 0.25, b) == {"difference": 0.25, "ci95": [0.25, 0.25]}
    # A ratio of sums whose per-page ratio is constant: the same.
    totals = np.array([1.0, 2.0, 4.0, 8.0])
    assert paired_bootstrap(0.5 * totals, 0.25 * totals, totals=totals) == \
        {"difference": 0.25, "ci95": [0.25, 0.25]}


def test_bootstrap_matches_a_direct_numpy_bootstrap(monkeypatch):
    from tfrec.evaluation.bootstrap import paired_bootstrap
    a = np.array([1.0, 0.0, 1.0, 1.0, 0.0, 0.5, 1.0])
    b = np.array([0.0, 0.0, 1.0, 0.0, 1.0, 0.0, 0.5])
    rng = np.random.default_rng(0)
    draws = [rng.integers(0, 7, 7) for _ in range(1000)]
    means = [np.mean(a[i] - b[i]) for i in draws]
    got = paired_bootstrap(a, b)
    assert got["difference"] == pytest.approx(np.mean(a - b))  # 2/7
    assert got["ci95"] == pytest.approx(np.percentile(means, [2.5, 97.5]), abs=1e-12)
    assert got["ci95"][0] < 2 / 7 < got["ci95"][1]
    # Ratio of sums (weighted per-user loss per page): pages resampled, the ratio recomputed.
    totals = np.array([10.0, 5.0, 1.0, 20.0, 2.0, 8.0, 4.0])
    ratios = [a[i].sum() / totals[i].sum() - b[i].sum() / totals[i].sum() for i in draws]
    got = paired_bootstrap(a, b, totals=totals)
    assert got["difference"] == pytest.approx((a.sum() - b.sum()) / totals.sum())
    assert got["ci95"] == pytest.approx(np.percentile(ratios, [2.5, 97.5]), abs=1e-12)
    # Drawn in blocks of 3 resamples (as for many units): the same stream, the same interval.
    from tfrec.evaluation import bootstrap
    monkeypatch.setattr(bootstrap, "_CELLS", 3 * len(a))
    assert paired_bootstrap(a, b, totals=totals)["ci95"] == got["ci95"]


def test_ranker_vs_generator_order_is_the_loss_difference_by_page():
    from tfrec.evaluation.ranking import compare_orders, page_ids, weighted_per_user_loss
    # Two pages of (u1, 1) and (u1, 2) as in the hand case of test_ranking_pieces, and (u2, 1).
    examples = ExampleSet({"user_id": np.array(["u1"] * 6 + ["u2"] * 2, dtype=object),
                           "timestamp": np.array([1, 1, 1, 1, 2, 2, 1, 1]),
                           "clicked": np.array([1, 1, 0, 0, 1, 0, 1, 0]),
                           "watch_time": np.array([10.0, 5.0, 0, 0, 4.0, 0, 6.0, 0])})
    ranker = np.array([0.9, 0.2, 0.5, 0.2, 0.1, 0.3, 0.8, 0.1])   # loss (5 + 2.5 + 4) / 40
    generator = np.array([0.1, 0.2, 0.5, 0.3, 0.4, 0.3, 0.1, 0.8])  # loss (20 + 10 + 6) / 40
    pages = page_ids(examples["user_id"], examples["timestamp"])
    loss = lambda s: weighted_per_user_loss(pages, examples["clicked"],  # noqa: E731
                                            examples["watch_time"], s)["weighted_per_user_loss"]
    assert (loss(ranker), loss(generator)) == (pytest.approx(11.5 / 40), pytest.approx(36 / 40))
    got = compare_orders(examples, ranker, generator)
    assert got["difference"] == pytest.approx(36 / 40 - 11.5 / 40) and got["pages"] == 3
    # Per page, generator minus ranker mispredicted of total: 22.5 of 30, -4 of 4, 6 of 6. A
    # resample of page 2 alone (-1) or page 3 alone (+1) has probability 1/27 > 2.5% each: those
    # are the percentiles.
    assert got["ci95"] == [-1.0, 1.0]
