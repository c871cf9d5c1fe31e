import numpy as np
import pytest

from tfrec.evaluation.next_watch import evaluate_next_watch, expected_rank_metrics, target_ranks
from tfrec.features.example_set import ExampleSet
from tfrec.features.ragged import Ragged
from tfrec.models.popularity import Popularity


def _queries(labels, exclusions):
    lengths = np.array([len(e) for e in exclusions])
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
