"""MovieLens has no impressions: pages built from what the candidate generator retrieves, and the
generator's score u . v as a ranking feature."""
import numpy as np
import pytest

from conftest import small_candidate_generator
from tfrec.features.dataset import padded_features
from tfrec.features.ranking_examples import build_ranking_examples
from tfrec.features.retrieved_impressions import (candidate_generation_scores,
                                                  retrieved_impressions)

H = 5


@pytest.fixture(scope="module")
def generator():
    rng = np.random.default_rng(0)
    watches = [(f"u{u}", f"v{3 * rng.integers(0, 10) + u % 3}", 100 * t + u, float(1 + (t % 5)))
               for u in range(30) for t in range(12)]
    return small_candidate_generator(watches, H)


def _scores(model, queries, tower):
    u = model.query_vectors(padded_features(queries, tower.max_history, tower.max_search_tokens))
    ids, table = model.candidate_table()
    return ids, u @ table.T


def test_retrieved_pages_hold_the_next_watch_and_top_n_negatives(generator):
    events, ex, tower, model = generator
    top_n, k = 6, 3
    imp = retrieved_impressions(model, ex.validation, tower, events.watches, top_n=top_n,
                                negatives_per_page=k, seed=1)
    assert len(imp) == (1 + k) * len(ex.validation)
    ids, scores = _scores(model, ex.validation, tower)
    watch_time = events.watches.set_index(["user_id", "video_id", "timestamp"])["watch_time"]
    for q in range(len(ex.validation)):
        page = imp.iloc[q * (1 + k):(q + 1) * (1 + k)]
        assert sorted(page["position"]) == list(range(1 + k))
        assert page["clicked"].tolist() == [1] + [0] * k
        assert (page["timestamp"] == ex.validation["timestamp"][q]).all()
        label = ex.validation["label"][q]
        assert page["video_id"].iloc[0] == label
        assert page["watch_time"].iloc[0] == watch_time[(ex.validation["user_id"][q], label,
                                                         ex.validation["timestamp"][q])]
        # Negatives: the generator's top_n among videos neither watched before nor the label.
        s = scores[q].copy()
        s[np.isin(ids, list(ex.validation["exclusions"].row(q)) + [label])] = -np.inf
        top = set(ids[np.argsort(-s, kind="stable")[:top_n]])
        negatives = page["video_id"].iloc[1:].tolist()
        assert len(set(negatives)) == k and set(negatives) <= top
    assert (imp.loc[imp["clicked"] == 0, "watch_time"] == 0).all()


def test_candidate_generation_score_is_u_dot_v_of_the_impression(generator):
    events, ex, tower, model = generator
    imp = retrieved_impressions(model, ex.test, tower, events.watches, top_n=6,
                                negatives_per_page=3)
    ranking = build_ranking_examples(events, imp, max_history=H)
    got = candidate_generation_scores(model, ranking, tower)
    ids, scores = _scores(model, ex.test, tower)
    # Test queries and their pages share user, time and history (distinct timestamps here).
    col = {v: i for i, v in enumerate(ids)}
    row = {(u, t): i for i, (u, t) in enumerate(zip(ex.test["user_id"], ex.test["timestamp"]))}
    expected = [scores[row[(u, t)], col[v]] for u, t, v in
                zip(ranking["user_id"], ranking["timestamp"], ranking["video_id"])]
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


def test_if_retrieved_pages_hold_the_next_watch_only_when_the_generator_ranks_it(generator):
    events, ex, tower, model = generator
    top_n, k = 4, 2
    imp = retrieved_impressions(model, ex.validation, tower, events.watches, top_n=top_n,
                                negatives_per_page=k, positive="if_retrieved")
    ids, scores = _scores(model, ex.validation, tower)
    expected_in = []
    for q in range(len(ex.validation)):
        s = scores[q].copy()
        s[np.isin(ids, list(ex.validation["exclusions"].row(q)))] = -np.inf
        label = ex.validation["label"][q]
        expected_in.append(label in set(ids[np.argsort(-s, kind="stable")[:top_n]]))
    pages = imp.groupby(["user_id", "timestamp"], sort=False)
    got_in = [bool(p["clicked"].sum()) for _, p in pages]
    assert got_in == expected_in and 0 < sum(got_in) < len(got_in)
    assert all(len(p) == k + int(c) for (_, p), c in zip(pages, got_in))
    with pytest.raises(ValueError, match="positive must be"):
        retrieved_impressions(model, ex.validation, tower, events.watches, positive="sometimes")


def test_movielens_test_pages_get_the_generators_test_history_ties_included(ml100k_dir):
    """The P1 test queries of real MovieLens-100K, where many ratings share one second: the
    ranking examples of their pages have, element for element, the query's watch_history, and
    cg_score is the generator's u . v on it."""
    import tensorflow as tf

    from tfrec.config import SoftmaxConfig, UserTowerConfig
    from tfrec.data.movielens import read_recbole
    from tfrec.features.local_driver import build_candidate_examples
    from tfrec.models.training import build_model
    events = read_recbole(ml100k_dir)
    ex = build_candidate_examples(events)
    tower = UserTowerConfig(embedding_dim=8, hidden_units=(16, 8))
    tf.keras.utils.set_random_seed(0)
    # Untrained weights: the history rule does not depend on them, and u still differs with
    # the history, so cg_score tells the histories apart.
    model = build_model(ex, events.users, events.videos["video_id"].to_numpy(), tower,
                        SoftmaxConfig(loss="full", use_bias=True))
    imp = retrieved_impressions(model, ex.test, tower, events.watches, top_n=10,
                                negatives_per_page=3, seed=0)
    ranking = build_ranking_examples(events, imp, max_history=tower.max_history)
    query = {u: i for i, u in enumerate(ex.test["user_id"])}  # one test query per user
    rows = np.array([query[u] for u in ranking["user_id"]])
    expected = ex.test["watch_history"].take(rows)
    assert len(ranking) == 4 * len(ex.test) == 4 * 943
    np.testing.assert_array_equal(ranking["watch_history"].lengths, expected.lengths)
    np.testing.assert_array_equal(ranking["watch_history"].values, expected.values)
    np.testing.assert_array_equal(ranking["watches_before"], ex.test["watches_before"][rows])

    # The checked set holds the users whose test target shares its second with the watch
    # before it, the ones a strictly-earlier-time history would cut differently: measured 415.
    times = events.watches.set_index(["user_id", "video_id"])["timestamp"]
    newest = ex.test["watch_history"].values[ex.test["watch_history"].offsets[:-1]]
    tied = times.loc[list(zip(ex.test["user_id"], newest))].to_numpy() == ex.test["timestamp"]
    assert tied.sum() == 415
    by_time = build_ranking_examples(events, imp.drop(columns="watches_before"),
                                     max_history=tower.max_history)
    width = tower.max_history
    changed = (by_time["watch_history"].to_padded(width, "") !=
               ranking["watch_history"].to_padded(width, "")).any(axis=1)
    np.testing.assert_array_equal(changed, tied[rows])  # ... and exactly those

    # cg_score on the page's history is u . v of the generator's own test query.
    ids, scores = _scores(model, ex.test, tower)
    col = {v: i for i, v in enumerate(ids)}
    got = candidate_generation_scores(model, ranking, tower)
    want = scores[rows, [col[v] for v in ranking["video_id"]]]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    assert not np.allclose(candidate_generation_scores(model, by_time, tower)[changed],
                           want[changed], rtol=1e-4, atol=1e-5)
