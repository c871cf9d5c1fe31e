"""The simulated world has the properties the paper's methods rely on, and knows its own truth."""
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from tfrec.data import schema
from tfrec.data.simulator import load_world, preset, simulate, simulate_to_parquet
from tfrec.data.simulator.world import DAY


@pytest.fixture(scope="module")
def small():
    """The pipeline's world (5k users, 10k videos, ~0.7M events; under a second)."""
    return simulate(preset("small"), seed=0)


def test_same_seed_same_world_and_other_seed_differs():
    _, a = simulate(preset("tiny"), seed=3)
    _, b = simulate(preset("tiny"), seed=3)
    _, c = simulate(preset("tiny"), seed=4)
    for name in ("watches", "impressions", "searches", "users", "videos"):
        pd.testing.assert_frame_equal(getattr(a, name), getattr(b, name))
    assert not a.watches.equals(c.watches)


def test_tables_follow_the_event_schema_and_survive_parquet(tmp_path):
    world, events = simulate(preset("tiny"), seed=1)
    checked = events.validated()  # raises on unknown ids / conflicting rows
    assert checked.dropped_duplicates == {t: 0 for t in schema.TABLES}
    counts = simulate_to_parquet(preset("tiny"), tmp_path / "sim", seed=1)
    assert counts == events.counts()
    back = schema.read_events(str(tmp_path / "sim"))
    for name in schema.TABLES:
        pd.testing.assert_frame_equal(getattr(back, name), getattr(events, name),
                                      check_dtype=False)
    # The written world rebuilds the same ground truth.
    again = load_world(str(tmp_path / "sim"))
    imp = events.impressions.head(500)
    u = imp["user_id"].str[1:].astype(int).to_numpy()
    v = imp["video_id"].str[1:].astype(int).to_numpy()
    truth = again.expected_watch_time(u, v, imp["timestamp"].to_numpy(), imp["position"].to_numpy())
    np.testing.assert_allclose(truth, imp["true_expected_watch_time"], rtol=1e-9)
    assert not os.path.exists(str(tmp_path / "sim") + ".tmp")


def test_basic_facts_of_the_logs(small):
    world, ev = small
    imp, watches = ev.impressions, ev.watches
    assert (imp["watch_time"][imp["clicked"] == 0] == 0).all()
    dur = ev.videos.set_index("video_id")["duration"]
    assert (watches["watch_time"].to_numpy() <= dur.loc[watches["video_id"]].to_numpy()).all()
    assert (imp["watch_time"][imp["clicked"] == 1] > 0).all()
    # Nothing is shown or watched before its upload.
    upload = ev.videos.set_index("video_id")["upload_timestamp"]
    assert (imp["timestamp"].to_numpy() >= upload.loc[imp["video_id"]].to_numpy()).mean() > 0.999
    assert (watches["timestamp"].to_numpy() >= upload.loc[watches["video_id"]].to_numpy()).all()
    # A video appears at most once per page.
    assert not imp.duplicated(["user_id", "timestamp", "video_id"]).any()
    # Fresh uploads stream in over the whole period.
    inside = ev.videos["upload_timestamp"] >= world.start
    assert 0.6 < inside.mean() < 0.8


def test_watch_probability_decays_with_video_age(small):
    world, ev = small
    videos = ev.videos.set_index("video_id")
    # Videos uploaded in the first two weeks: all ages up to 5 weeks are observed for them.
    early = videos[(videos["upload_timestamp"] >= world.start)
                   & (videos["upload_timestamp"] < world.start + 14 * DAY)]
    w = ev.watches[ev.watches["video_id"].isin(early.index)]
    age_days = (w["timestamp"].to_numpy() - early.loc[w["video_id"], "upload_timestamp"]
                .to_numpy()) / DAY
    per_video_day = [((age_days >= lo) & (age_days < hi)).sum() / (len(early) * (hi - lo))
                     for lo, hi in ((0, 3), (3, 7), (7, 14), (14, 21), (28, 35))]
    assert all(a > b for a, b in zip(per_video_day, per_video_day[1:])), per_video_day
    assert per_video_day[0] > 3 * per_video_day[-1], per_video_day


def test_clickbait_raises_clicks_and_lowers_watch_time_per_click(small):
    _, ev = small
    imp = ev.impressions
    bait = pd.Series(small[0].clickbait, index=ev.videos["video_id"])
    level = bait.loc[imp["video_id"]].to_numpy()
    high, low = level >= np.quantile(level, 0.8), level <= np.quantile(level, 0.2)
    ctr_high, ctr_low = imp["clicked"][high].mean(), imp["clicked"][low].mean()
    clicked = imp["clicked"].to_numpy() == 1
    per_click_high = imp["watch_time"][high & clicked].mean()
    per_click_low = imp["watch_time"][low & clicked].mean()
    assert ctr_high > 1.5 * ctr_low, (ctr_high, ctr_low)
    assert per_click_high < 0.7 * per_click_low, (per_click_high, per_click_low)


def test_click_rate_falls_with_position(small):
    _, ev = small
    ctr = ev.impressions.groupby("position")["clicked"].mean()
    assert list(ctr.index) == list(range(1, 11))
    assert (np.diff(ctr.to_numpy()) < 0).all(), ctr.to_dict()
    assert ctr.loc[1] > 3 * ctr.loc[10]


def test_heavy_users_exist(small):
    _, ev = small
    per_user = ev.watches["user_id"].value_counts().reindex(ev.users["user_id"], fill_value=0)
    top = np.sort(per_user.to_numpy())[::-1]
    top1_share = top[: len(top) // 100].sum() / top.sum()
    assert top1_share > 0.05, top1_share   # the top 1% of users do over 5x their share
    assert top[0] > 10 * max(np.median(top), 1)


def test_search_tokens_predict_the_next_watches(small):
    _, ev = small
    topic = ev.videos.set_index("video_id")["topic"]
    searches = ev.searches.sort_values("timestamp")
    watches = ev.watches.sort_values("timestamp").assign(topic=lambda d: topic.loc[d["video_id"]]
                                                         .to_numpy())
    # The next watch of the same user strictly after each search.
    nxt = pd.merge_asof(searches, watches, on="timestamp", by="user_id", direction="forward",
                        allow_exact_matches=False).dropna(subset=["topic"])
    query_topic = nxt["query"].str.split().str[0].str.split("-").str[0]
    hit = (query_topic == nxt["topic"]).mean()
    chance = (watches["topic"].value_counts(normalize=True) ** 2).sum()  # same topic at random
    assert hit > 5 * chance, (hit, chance)


def test_true_expected_watch_time_matches_the_simulated_mean(small):
    world, ev = small
    imp = ev.impressions
    c = world.config
    ewt = imp["true_expected_watch_time"].to_numpy()
    p = imp["true_click_probability"].to_numpy()
    given_click = ewt / p
    m = given_click / world.duration[imp["video_id"].str[1:].astype(int).to_numpy()]
    # Var[W] = p E[(dF)^2] - (p d m)^2, with Var F = m (1 - m) / (kappa + 1) (Beta).
    d = given_click / m
    second = p * d ** 2 * (m * (1 - m) / (c.watch_concentration + 1) + m ** 2)
    var = second - ewt ** 2
    decile = np.minimum((pd.Series(ewt).rank(pct=True).to_numpy() * 10).astype(int), 9)
    for q in range(10):
        rows = decile == q
        diff = imp["watch_time"].to_numpy()[rows].sum() - ewt[rows].sum()
        z = diff / np.sqrt(var[rows].sum())
        assert abs(z) < 4, (q, z)
    # Clicks match the true click probability too.
    z = (imp["clicked"].sum() - p.sum()) / np.sqrt((p * (1 - p)).sum())
    assert abs(z) < 4


def test_true_top_k_is_the_highest_affinity_among_uploaded_videos(small):
    world, _ = small
    users, times = np.array([0, 1, 2]), np.full(3, world.start + 10 * DAY)
    top = world.true_top_k(users, times, k=5)
    scores = world.affinity_matrix(users)
    for row in range(3):
        available = world.upload <= times[row]
        assert available[top[row]].all()
        best = np.sort(scores[row][available])[::-1][:5]
        np.testing.assert_allclose(scores[row, top[row]], best)


def test_unknown_preset_and_bad_settings_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown simulator preset 'huge'"):
        preset("huge")
    with pytest.raises(ValueError, match="num_users must be >= 1"):
        preset("tiny", num_users=0)
    out = subprocess.run([sys.executable, "-m", "tfrec.cli", "data", "simulate", "--preset",
                          "tiny", "--users", "50", "--out", str(tmp_path / "cli")],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert pd.read_parquet(tmp_path / "cli" / "users.parquet").shape[0] == 50
