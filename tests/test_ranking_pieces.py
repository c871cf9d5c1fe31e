"""Ranking building blocks with hand-computed answers: the weighted loss, the CDF normalisation,
the ranking metrics and the impression features."""
import math

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
import tensorflow_recommenders as tfrs

from conftest import make_events
from ranking_fixture import simulated_world
from tfrec.config import ExampleConfig
from tfrec.data.errors import DataError
from tfrec.data.schema import EventTables, coerce_table
from tfrec.evaluation.ranking import (calibration, click_auc, page_ids,
                                      weighted_per_user_loss)
from tfrec.features.example_set import ExampleSet
from tfrec.features.local_driver import build_candidate_examples
from tfrec.features.ordering import order_watches
from tfrec.features.ranking_examples import NEVER_SECONDS, build_ranking_examples
from tfrec.losses.weighted_logistic import (WatchTimeLoss, WeightedLogisticLoss,
                                            watch_time_loss, watch_time_weights,
                                            weighted_logistic_loss)
from tfrec.models.layers import EmpiricalCDF, quantile_boundaries


# --- the weighted logistic loss ---------------------------------------------------------------

def test_weighted_loss_through_the_tfrs_ranking_task_matches_the_hand_computed_value():
    clicked = tf.constant([1, 0, 1])
    watch = tf.constant([30.0, 0.0, 2.0])
    logits = tf.constant([0.0, math.log(3.0), math.log(0.25)])  # p = 1/2, 3/4, 1/5
    weights = watch_time_weights(clicked, watch)
    np.testing.assert_allclose(weights.numpy(), [30.0, 1.0, 2.0])
    task = tfrs.tasks.Ranking(loss=WeightedLogisticLoss())
    got = task(clicked, logits, sample_weight=weights).numpy()
    expected = (30 * math.log(2) + math.log(4) + 2 * math.log(5)) / 3
    assert got == pytest.approx(expected, rel=1e-6)
    # Unweighted it is plain BCE from logits.
    plain = tf.keras.losses.BinaryCrossentropy(from_logits=True)(
        tf.cast(clicked, tf.float32), logits).numpy()
    assert tf.reduce_mean(weighted_logistic_loss(clicked, logits)).numpy() == \
        pytest.approx(plain, rel=1e-5)


def test_the_weighted_loss_is_minimised_where_the_odds_equal_total_watch_time_per_negative():
    # One group of identical impressions: 3 clicks watched 10, 20, 60 s, 7 not clicked.
    clicked = tf.constant([1, 1, 1] + [0] * 7)
    watch = tf.constant([10.0, 20.0, 60.0] + [0.0] * 7)
    best = math.log(90.0 / 7)  # odds = sum T / (N - k)
    for z, sign in ((best, 0), (best - 0.3, -1), (best + 0.3, 1)):
        logit = tf.Variable(z)
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(weighted_logistic_loss(
                clicked, tf.fill([10], logit), watch_time_weights(clicked, watch)))
        grad = float(tape.gradient(loss, logit))
        assert (abs(grad) < 1e-4) if sign == 0 else (np.sign(grad) == sign)


def test_every_impression_a_negative_puts_the_optimum_at_the_expected_watch_time():
    # The same group: E[T] = 90 / 10 per impression, whatever the click rate (here 0.3).
    target = tf.constant([10.0, 20.0, 60.0] + [0.0] * 7)  # watch time if clicked, else 0
    best = math.log(90.0 / 10)
    for z, sign in ((best, 0), (best - 0.3, -1), (best + 0.3, 1)):
        logit = tf.Variable(z)
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(watch_time_loss(target, tf.fill([10], logit)))
        grad = float(tape.gradient(loss, logit))
        assert (abs(grad) < 1e-4) if sign == 0 else (np.sign(grad) == sign)
    # Hand case through the TFRS task: t softplus(-z) + softplus(z), batch mean.
    z = tf.constant([0.0, math.log(3.0)])
    got = tfrs.tasks.Ranking(loss=WatchTimeLoss())(tf.constant([30.0, 0.0]), z).numpy()
    assert got == pytest.approx((30 * math.log(2) + math.log(2) + math.log(4)) / 2, rel=1e-6)


def test_logit_calibration_recovers_the_scale_and_shift_of_an_overconfident_model():
    from tfrec.models.ranking_calibration import (fit_logit_calibration, objective,
                                                  objective_weights)
    rng = np.random.default_rng(0)
    n = 200_000
    true_logit = rng.normal(-2.0, 1.0, n)
    p = 1 / (1 + np.exp(-true_logit))
    clicked = (rng.random(n) < p).astype(int)
    # An over-confident model: logits twice as spread, shifted by +1.
    served = 2.0 * true_logit + 1.0
    weights = objective_weights(clicked, np.ones(n), weighted=False)
    scale, shift = fit_logit_calibration(served, *weights)
    assert scale == pytest.approx(0.5, abs=0.03) and shift == pytest.approx(-0.5, abs=0.08)
    assert scale > 0 and objective(scale * served + shift, *weights) < objective(served, *weights)
    with pytest.raises(ValueError, match="both positive and negative"):
        fit_logit_calibration(served, np.zeros(n), np.ones(n))
    # The weights of each objective, per impression: (A, B).
    a, b = objective_weights([1, 0], [30.0, 0.0])
    np.testing.assert_allclose([a, b], [[30, 0], [0, 1]])
    a, b = objective_weights([1, 0], [30.0, 0.0], negatives="all_impressions")
    np.testing.assert_allclose([a, b], [[30, 0], [1, 1]])


# --- the empirical-CDF normalisation ----------------------------------------------------------

def _cdf_data():
    rng = np.random.default_rng(0)
    return np.c_[rng.exponential(100.0, 20_000), rng.integers(0, 3, 20_000),
                 np.full(20_000, 7.0)]


def test_cdf_is_uniform_on_training_data_and_point_masses_get_their_mid_level():
    x = _cdf_data()
    layer = EmpiricalCDF(quantile_boundaries(x, 100))
    out = layer(tf.constant(x, tf.float32)).numpy()
    assert out.shape == (len(x), 9)
    counts, _ = np.histogram(out[:, 0], bins=10, range=(0, 1))
    assert np.all(np.abs(counts - len(x) / 10) < 0.02 * len(x))
    # A count feature 0/1/2 with mass 1/3 each: the middle of each mass.
    np.testing.assert_allclose(np.unique(out[:, 1]), [1 / 6, 1 / 2, 5 / 6], atol=0.01)
    np.testing.assert_allclose(out[:, 2], 0.5)  # a constant feature carries no information
    np.testing.assert_allclose(out[:, 3:6], out[:, :3] ** 2, rtol=1e-5)
    np.testing.assert_allclose(out[:, 6:], np.sqrt(out[:, :3]), rtol=1e-5)


def test_cdf_is_monotone_bounded_and_finite_for_unseen_extremes_and_nan():
    layer = EmpiricalCDF(quantile_boundaries(_cdf_data(), 100))
    grid = np.linspace(-1e3, 2e3, 5001)
    values = np.c_[grid, grid / 500, grid]
    out = layer(tf.constant(values, tf.float32)).numpy()
    assert np.all(np.diff(out[:, 0]) >= 0) and np.all(np.diff(out[:, 1]) >= 0)
    assert out[0, 0] == 0.0 and out[-1, 0] == 1.0
    strange = layer(tf.constant([[np.nan, np.inf, -np.inf], [1e30, -1e30, 7.0]],
                                tf.float32)).numpy()
    assert np.isfinite(strange).all() and (strange >= 0).all() and (strange <= 1).all()


def test_cdf_layer_round_trips_through_its_config():
    layer = EmpiricalCDF(quantile_boundaries(_cdf_data(), 20), name="cdf")
    clone = EmpiricalCDF.from_config(layer.get_config())
    x = tf.constant(_cdf_data()[:100], tf.float32)
    np.testing.assert_array_equal(layer(x).numpy(), clone(x).numpy())
    with pytest.raises(ValueError, match="non-decreasing"):
        EmpiricalCDF([[0.0, 2.0, 1.0]])


# --- ranking metrics ---------------------------------------------------------------------------

def test_weighted_per_user_loss_hand_case_pages_are_user_and_timestamp():
    users = ["u1"] * 6 + ["u2"]
    times = [1, 1, 1, 1, 2, 2, 1]
    clicked = [1, 1, 0, 0, 1, 0, 1]
    watch = [10.0, 5.0, 0, 0, 4.0, 0, 100.0]
    scores = [0.9, 0.2, 0.5, 0.2, 0.1, 0.3, 0.0]
    # Page (u1, 1): 10 s beats both; 5 s loses to 0.5 and ties 0.2 -> 5 + 2.5 of 30.
    # Page (u1, 2): 4 s loses -> 4 of 4. Page (u2, 1) has no pair.
    got = weighted_per_user_loss(page_ids(users, times), clicked, watch, scores)
    assert got["weighted_per_user_loss"] == pytest.approx(11.5 / 34)
    assert got["pairs"] == 5 and got["pages_with_pairs"] == 2


def test_weighted_per_user_loss_equals_the_pairwise_definition_on_random_pages():
    rng = np.random.default_rng(1)
    n = 3000
    pages = rng.integers(0, 300, n)
    clicked = (rng.random(n) < 0.3).astype(int)
    watch = np.where(clicked, rng.exponential(50, n), 0.0)
    scores = rng.integers(0, 8, n).astype(float)  # many ties
    mis = total = 0.0
    for p in np.unique(pages):
        on = pages == p
        for s, w in zip(scores[on & (clicked == 1)], watch[on & (clicked == 1)]):
            neg = scores[on & (clicked == 0)]
            mis += w * (np.sum(neg > s) + 0.5 * np.sum(neg == s))
            total += w * len(neg)
    got = weighted_per_user_loss(pages, clicked, watch, scores)["weighted_per_user_loss"]
    assert got == pytest.approx(mis / total, rel=1e-12)


def test_click_auc_counts_ties_half_and_calibration_recovers_a_line():
    assert click_auc([1, 0, 1, 0], [0.8, 0.8, 0.3, 0.1]) == pytest.approx(2.5 / 4)
    assert math.isnan(click_auc([1, 1], [0.1, 0.2]))
    x = np.linspace(1, 100, 1000)
    cal = calibration(x, 2 * x + 1)
    assert cal["slope"] == pytest.approx(2) and cal["intercept"] == pytest.approx(1)
    assert cal["r2"] == pytest.approx(1)
    assert len(cal["by_bin"]) == 10 and sum(b["count"] for b in cal["by_bin"]) == 1000
    assert cal["by_bin"][0]["mean_actual"] == pytest.approx(2 * cal["by_bin"][0]
                                                            ["mean_predicted"] + 1)


# --- ranking examples --------------------------------------------------------------------------

def _hand_events(with_optional=True):
    videos = pd.DataFrame({"video_id": ["a", "b", "c"]})
    users = pd.DataFrame({"user_id": ["u1", "u2"]})
    if with_optional:
        videos = videos.assign(channel=["c1", "c1", "c2"], genres=["t1|x", "t2", "t1"],
                               language=["en", "fr", "en"], upload_timestamp=[0, 15, 5])
        users = users.assign(language=["en", "fr"])
    watches = pd.DataFrame([("u1", "a", 10, 3.0), ("u1", "c", 20, 4.0), ("u1", "b", 30, 5.0),
                            ("u2", "b", 5, 1.0)],
                           columns=["user_id", "video_id", "timestamp", "watch_time"])
    impressions = pd.DataFrame(
        [("u1", "b", 20, 0, 1, 40.0), ("u1", "c", 20, 1, 0, 0.0), ("u1", "b", 35, 0, 0, 0.0),
         ("u1", "c", 35, 1, 1, 7.0), ("u2", "a", 5, 0, 0, 0.0), ("u2", "a", 6, 0, 0, 0.0)],
        columns=["user_id", "video_id", "timestamp", "position", "clicked", "watch_time"])
    return EventTables(
        watches=coerce_table(watches, "watches", "w"), users=coerce_table(users, "users", "u"),
        videos=coerce_table(videos, "videos", "v"),
        impressions=coerce_table(impressions, "impressions", "i")).validated()


def test_ranking_examples_hand_case_uses_only_strictly_earlier_events():
    ex = build_ranking_examples(_hand_events(), max_history=5)
    assert list(ex["video_id"]) == ["b", "c", "b", "c", "a", "a"]
    histories = [list(ex["watch_history"].row(i)) for i in range(6)]
    # The watch of c at t=20 is not history for the page at t=20; most recent first.
    assert histories == [["a"], ["a"], ["b", "c", "a"], ["b", "c", "a"], [], ["b"]]
    never = NEVER_SECONDS
    np.testing.assert_array_equal(ex["seconds_since_channel_watch"], [10, never, 5, 15, never, 1])
    # Topic = first genre: b is t2 (never before t=35's b@30 -> 5), c and a are t1.
    np.testing.assert_array_equal(ex["seconds_since_topic_watch"], [never, 10, 5, 15, never,
                                                                   never])
    np.testing.assert_array_equal(ex["never_watched_channel"], [0, 1, 0, 0, 1, 0])
    np.testing.assert_array_equal(ex["previous_impressions"], [0, 0, 1, 1, 0, 1])
    np.testing.assert_array_equal(ex["video_age_seconds"], [5, 15, 20, 30, 5, 6])
    assert list(ex["user_language"]) == ["en"] * 4 + ["fr"] * 2
    assert list(ex["video_language"]) == ["fr", "en", "fr", "en", "en", "en"]
    np.testing.assert_array_equal(ex["clicked"], [1, 0, 0, 1, 0, 0])
    np.testing.assert_array_equal(ex["watch_time"], [40, 0, 0, 7, 0, 0])


def _tied_events():
    """u watches a at 10, then b, c, d in one second (20; tie order b < c < d by crc32), e at 30.
    Channels: a, c, e in k1, b, d in k2; topics: a, d, e t1, b, c t2."""
    events = make_events([("u", "a", 10), ("u", "b", 20), ("u", "c", 20), ("u", "d", 20),
                          ("u", "e", 30)])
    events.videos = events.videos.assign(channel=["k1", "k2", "k1", "k2", "k1"],
                                         topic=["t1", "t2", "t2", "t1", "t1"])
    return events


def test_pages_of_tied_next_watch_examples_get_the_examples_own_history():
    events = _tied_events()
    assert order_watches(events.watches)["video_id"].tolist() == ["a", "b", "c", "d", "e"]
    ex = build_candidate_examples(events, ExampleConfig(min_history=1))
    queries = ExampleSet.concat([ex.train, ex.validation])  # labels b, c, d: all at second 20
    assert list(queries["label"]) == ["b", "c", "d"]
    np.testing.assert_array_equal(queries["watches_before"], [1, 2, 3])
    # One page per example, as retrieved_impressions builds them: its label (clicked) and e.
    pages = pd.DataFrame({
        "user_id": "u", "video_id": ["b", "e", "c", "e", "d", "e"], "timestamp": 20,
        "position": [0, 1] * 3, "clicked": [1, 0] * 3, "watch_time": [1.0, 0.0] * 3,
        "watches_before": np.repeat(queries["watches_before"], 2)})
    rk = build_ranking_examples(events, pages, max_history=5)
    assert list(rk["video_id"]) == ["b", "e", "c", "e", "d", "e"]
    histories = [list(rk["watch_history"].row(i)) for i in range(len(rk))]
    # The candidate examples' histories, byte for byte: ties before the label in tie order count.
    assert histories[::2] == [list(queries["watch_history"].row(i)) for i in range(3)]
    assert histories == [["a"], ["a"], ["b", "a"], ["b", "a"], ["c", "b", "a"], ["c", "b", "a"]]
    never = NEVER_SECONDS
    # From the same watches: e (k1) on d's page is 0 s after c, a tied watch before the cut.
    np.testing.assert_array_equal(rk["seconds_since_channel_watch"], [never, 10, 10, 10, 0, 0])
    np.testing.assert_array_equal(rk["seconds_since_topic_watch"], [never, 10, 0, 10, 10, 10])
    # e was shown on the pages of the examples before in tie order.
    np.testing.assert_array_equal(rk["previous_impressions"], [0, 0, 0, 1, 0, 2])
    np.testing.assert_array_equal(rk["watches_before"], [1, 1, 2, 2, 3, 3])


def test_a_logged_impression_in_a_watch_second_sees_only_strictly_earlier_watches():
    # No watches_before: a page logged at 20 cannot tell which watches of second 20 preceded
    # it (and a click's own watch is logged at its second), so none of them is before it.
    events = _tied_events()
    logged = pd.DataFrame({"user_id": "u", "video_id": ["d", "e", "e"], "timestamp": [20, 20, 31],
                           "position": [0, 1, 0], "clicked": [1, 0, 0],
                           "watch_time": [1.0, 0.0, 0.0]})
    rk = build_ranking_examples(events, logged, max_history=5)
    assert [list(rk["watch_history"].row(i)) for i in range(3)] == [
        ["a"], ["a"], ["e", "d", "c", "b", "a"]]
    np.testing.assert_array_equal(rk["watches_before"], [1, 1, 5])
    np.testing.assert_array_equal(rk["seconds_since_channel_watch"], [NEVER_SECONDS, 10, 1])
    np.testing.assert_array_equal(rk["previous_impressions"], [0, 0, 1])
    # A cut outside the page's second (or the user's watches) is refused.
    for bad in (1, 6):
        with pytest.raises(DataError, match="watches_before=.* is not a position of that second"):
            build_ranking_examples(events, logged.iloc[2:].assign(watches_before=bad))


def test_ranking_examples_without_optional_columns_get_constant_features():
    ex = build_ranking_examples(_hand_events(with_optional=False), max_history=5)
    assert set(ex["user_language"]) == {""} and set(ex["video_language"]) == {""}
    np.testing.assert_array_equal(ex["never_watched_channel"], 1)
    np.testing.assert_array_equal(ex["never_watched_topic"], 1)
    np.testing.assert_array_equal(ex["video_age_seconds"], 0)
    np.testing.assert_array_equal(ex["previous_impressions"], [0, 0, 1, 1, 0, 1])


def test_features_do_not_change_when_later_events_are_removed():
    events = simulated_world(n_users=40, n_videos=30, pages_per_user=8, seed=3)
    events.searches = coerce_table(pd.DataFrame({
        "user_id": events.impressions["user_id"].iloc[::7].to_numpy(),
        "timestamp": events.impressions["timestamp"].iloc[::7].to_numpy() - 3,
        "query": [f"q{i % 5} w{i % 3}" for i in range(len(events.impressions.iloc[::7]))]}),
        "searches", "s")
    full = build_ranking_examples(events, max_history=6)
    cut = 1400
    early = EventTables(
        watches=events.watches[events.watches["timestamp"] < cut], users=events.users,
        videos=events.videos, searches=events.searches[events.searches["timestamp"] < cut],
        impressions=events.impressions[events.impressions["timestamp"] <= cut])
    part = build_ranking_examples(early, max_history=6)
    rows = np.flatnonzero(full["timestamp"] <= cut)
    assert len(rows) == len(part) > 100
    for name, col in part.columns.items():
        ref = full[name]
        if hasattr(col, "lengths"):
            assert [list(ref.row(i)) for i in rows] == [list(col.row(i))
                                                         for i in range(len(part))], name
        else:
            np.testing.assert_array_equal(np.asarray(ref)[rows], col, err_msg=name)
    assert (full["never_watched_channel"] == 0).any() and (full["previous_impressions"] > 0).any()
    assert full["search_tokens"].lengths.sum() > 0


def test_unknown_impression_video_is_a_clear_error():
    events = _hand_events()
    bad = events.impressions.assign(video_id=["b", "zzz", "b", "c", "a", "a"])
    with pytest.raises(Exception, match="unknown user or video.*zzz"):
        build_ranking_examples(events, impressions=bad)


# --- the pipeline config's ranking section ------------------------------------------------------

def test_ranking_section_defaults_to_disabled_and_parses(tmp_path):
    from tfrec.config import load_config, to_dict
    path = tmp_path / "c.yaml"
    path.write_text("name: x\n")
    assert load_config(str(path)).ranking.enabled is False
    assert load_config("pipelines/movielens_100k.yaml").ranking.enabled is True
    path.write_text("name: x\nranking:\n  enabled: true\n  model:\n    hidden_units: []\n"
                    "    negative_subsample_rate: 0.25\n  true_expected_column: true_ewt\n")
    config = load_config(str(path))
    assert config.ranking.model.hidden_units == () and config.ranking.enabled
    assert to_dict(config)["ranking"]["model"]["negative_subsample_rate"] == 0.25


@pytest.mark.parametrize("text,message", [
    ("model:\n    negative_subsample_rate: 0\n", "'ranking.model.negative_subsample_rate'"),
    ("model:\n    features: [video_id, colour]\n", "unknown \\['colour'\\]"),
    ("model:\n    hiden_units: [3]\n", "did you mean 'ranking.model.hidden_units'"),
    ("model:\n    selection_metric: auc\n", "'ranking.model.selection_metric' must be one of"),
    ("model:\n    negatives: some\n", "'ranking.model.negatives' must be one of"),
    ("retrieved_impressions:\n    top_n: 5\n    negatives_per_page: 9\n", "must be <= 'top_n'"),
    ("test_fraction: 0.95\n", "'ranking.validation_fraction' and 'test_fraction'"),
    ("retrieved_impressions:\n    positive: maybe\n", "'ranking.retrieved_impressions.positive'"),
])
def test_bad_ranking_configs_name_the_key(tmp_path, text, message):
    from tfrec.config import ConfigError, load_config
    path = tmp_path / "c.yaml"
    path.write_text("name: x\nranking:\n  " + text)
    with pytest.raises(ConfigError, match=message):
        load_config(str(path))


def test_simulator_ground_truth_survives_parquet_and_reaches_the_examples(tmp_path):
    from tfrec.data.schema import read_events, write_events
    events = simulated_world(n_users=10, n_videos=12, pages_per_user=3, seed=2)
    write_events(events, str(tmp_path))
    back = read_events(str(tmp_path))
    ex = build_ranking_examples(back, max_history=3)
    assert "true_expected_watch_time" in ex.columns and "true_click_probability" in ex.columns
    np.testing.assert_allclose(np.sort(ex["true_expected_watch_time"]),
                               np.sort(events.impressions["true_expected_watch_time"]))
