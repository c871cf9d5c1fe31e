import numpy as np
import pandas as pd
import pytest

from conftest import make_events
from tfrec.config import ExampleConfig
from tfrec.data.movielens import read_recbole
from tfrec.features.candidate_examples import UserSearches, user_candidate_examples
from tfrec.features.history import (cuts_at_times, earlier_in_group, last_row_before,
                                    rows_before)
from tfrec.features.local_driver import build_candidate_examples
from tfrec.features.ordering import order_watches, tie_break_keys
from tfrec.features.ragged import Ragged
from tfrec.features.split import next_watch_roles


@pytest.fixture(scope="module")
def ml_examples(ml100k_dir):
    events = read_recbole(ml100k_dir)
    return events, build_candidate_examples(events, ExampleConfig(max_examples_per_user=40))


def test_ties_are_ordered_by_crc32_of_user_and_video():
    events = make_events([("u", "a", 5), ("u", "b", 5), ("u", "c", 5), ("u", "d", 1)])
    ordered = order_watches(events.watches)
    keys = tie_break_keys(["u"] * 3, ["a", "b", "c"])
    expected_tied = np.array(["a", "b", "c"])[np.argsort(keys)]
    assert list(ordered["video_id"]) == ["d", *expected_tied]


def test_split_last_is_test_second_to_last_is_validation():
    roles = next_watch_roles(np.array(["a"] * 4 + ["b"] * 2 + ["c"] * 3))
    assert roles.tolist() == [0, 0, 1, 2, 0, 0, 0, 1, 2]


def test_search_history_is_strictly_before_and_newest_first():
    times = np.array([1, 2, 2, 3, 5])
    idx, lengths = rows_before(cuts_at_times(times, np.array([2, 4, 1])), max_len=2)
    assert lengths.tolist() == [1, 2, 0]
    assert idx.tolist() == [0, 3, 2]


def test_watch_history_is_the_positions_before_newest_first():
    idx, lengths = rows_before(np.array([0, 1, 4]), max_len=3)
    assert lengths.tolist() == [0, 1, 3]
    assert idx.tolist() == [0, 3, 2, 1]


def test_last_row_of_a_group_before_a_cut_and_counts_of_earlier_moments():
    # Rows in watch order with groups 0, 1, 0, unknown, 0.
    rows = last_row_before([0, 1, 0, -1, 0], query_groups=[0, 0, 1, 1, -1, 0],
                           cuts=[2, 5, 1, 2, 5, 0])
    assert rows.tolist() == [0, 4, -1, 1, -1, -1]
    # (group, time, cut): equal moments are not earlier than each other.
    got = earlier_in_group([7, 7, 7, 8, 7], [1, 2, 2, 1, 2], [0, 0, 1, 0, 1])
    assert got.tolist() == [0, 1, 2, 0, 2]


def test_same_second_watches_follow_the_tie_rule():
    # a, b, c share a second: the tie rule orders them, and each sees those before it.
    events = make_events([("u", "a", 5), ("u", "b", 5), ("u", "c", 5), ("u", "z", 1),
                          ("u", "y", 9), ("u", "x", 10)])
    ordered = order_watches(events.watches)["video_id"].tolist()
    ex = build_candidate_examples(events, ExampleConfig(min_history=0))
    for label, hist in zip(ex.train["label"], (ex.train["watch_history"].row(i) for i in
                                              range(len(ex.train)))):
        pos = ordered.index(label)
        assert hist.tolist() == ordered[:pos][::-1]


def test_search_tokens_come_from_earlier_searches_newest_first():
    searches = UserSearches(np.array([5, 15]), Ragged(np.array(["cat", "video", "dog"]),
                                                      np.array([2, 1])))
    ex = user_candidate_examples("u", np.array(["a", "b", "c"]), np.array([1, 10, 20]), 3, 20,
                                 ExampleConfig(), searches)
    assert ex["label"].tolist() == ["b", "c"]
    assert ex["search_tokens"].row(0).tolist() == ["cat", "video"]
    assert ex["search_tokens"].row(1).tolist() == ["dog", "cat", "video"]
    assert ex["example_age"].tolist() == [10, 0]


def test_driver_tokenises_search_queries():
    events = make_events([("u", "a", 1), ("u", "b", 10), ("u", "c", 20), ("u", "d", 30),
                          ("u", "e", 40)], searches=[("u", 5, "Funny Cats"), ("u", 25, "dogs")])
    ex = build_candidate_examples(events, ExampleConfig())
    assert ex.train["search_tokens"].row(0).tolist() == ["funny", "cats"]
    assert ex.test["search_tokens"].row(0).tolist() == ["dogs", "funny", "cats"]


def test_no_feature_from_after_the_label(ml_examples):
    """Every history watch is earlier in the watch order than the label: its time is <= the
    label's, and a same-second one is before the label by the tie rule."""
    events, ex = ml_examples
    ordered = order_watches(events.watches)
    position = pd.Series(np.arange(len(ordered)), index=pd.MultiIndex.from_arrays(
        [ordered["user_id"], ordered["video_id"]]))
    assert position.index.is_unique  # MovieLens has no re-watches: (user, video) -> position
    watch_time = ordered.set_index(["user_id", "video_id"])["timestamp"]
    for split in (ex.train, ex.validation, ex.test):
        hist = split["watch_history"]
        users = np.repeat(split["user_id"], hist.lengths)
        keys = list(zip(users, hist.values))
        label_pos = np.repeat(position.loc[list(zip(split["user_id"], split["label"]))]
                              .to_numpy(), hist.lengths)
        label_times = np.repeat(split["timestamp"], hist.lengths)
        assert len(keys) > 0
        assert (position.loc[keys].to_numpy() < label_pos).all()
        assert (watch_time.loc[keys].to_numpy() <= label_times).all()


def test_history_is_complete_and_newest_first(ml_examples):
    events, ex = ml_examples
    ordered = order_watches(events.watches)
    by_user = {u: g for u, g in ordered.groupby("user_id")}
    rng = np.random.default_rng(0)
    for row in rng.choice(len(ex.train), 200, replace=False):
        videos = by_user[ex.train["user_id"][row]]["video_id"].tolist()
        pos = videos.index(ex.train["label"][row])
        assert ex.train["watch_history"].row(row).tolist() == videos[:pos][::-1][:50]


def test_held_out_targets_are_never_training_labels(ml_examples):
    _, ex = ml_examples
    train_pairs = set(zip(ex.train["user_id"], ex.train["label"]))
    for split in (ex.validation, ex.test):
        assert len(split) == 943
        assert not train_pairs & set(zip(split["user_id"], split["label"]))
    # The training window ends before every user's held-out targets.
    last_train = ex.train_watches.groupby("user_id")["timestamp"].max()
    val_time = dict(zip(ex.validation["user_id"], ex.validation["timestamp"]))
    assert all(last_train[u] <= val_time[u] for u in last_train.index)
    assert (ex.train["timestamp"] <= ex.end_of_training).all()
    assert (ex.validation["example_age"] == 0).all()


def test_exclusions_are_everything_watched_before_the_target(ml_examples):
    events, ex = ml_examples
    counts = events.watches.groupby("user_id").size()
    test_excl = dict(zip(ex.test["user_id"], ex.test["exclusions"].lengths))
    val_excl = dict(zip(ex.validation["user_id"], ex.validation["exclusions"].lengths))
    assert all(test_excl[u] == counts[u] - 1 and val_excl[u] == counts[u] - 2 for u in counts.index)


def test_per_user_cap_holds_and_is_a_real_sample(ml_examples):
    events, ex = ml_examples
    per_user = ex.train.columns["user_id"]
    _, n = np.unique(per_user, return_counts=True)
    assert n.max() == 40
    assert (n == 40).sum() > 500  # most ML users have more than 42 ratings


def test_same_seed_same_examples_other_seed_other_sample(ml100k_dir):
    events = read_recbole(ml100k_dir)
    small = events.__class__(**{**events.__dict__,
                                "watches": events.watches[events.watches.user_id.isin(
                                    [str(i) for i in range(1, 60)])]})
    build = lambda seed: build_candidate_examples(  # noqa: E731
        small, ExampleConfig(max_examples_per_user=10, seed=seed)).train
    a, b, c = build(0), build(0), build(1)
    assert a["label"].tolist() == b["label"].tolist()
    assert a["watch_history"].values.tolist() == b["watch_history"].values.tolist()
    assert a["label"].tolist() != c["label"].tolist()


def test_min_history_and_short_users():
    events = make_events([("a", "x", 1), ("a", "y", 2), ("b", "x", 1), ("b", "y", 2),
                          ("b", "z", 3), ("b", "w", 4)])
    ex = build_candidate_examples(events, ExampleConfig(min_history=1))
    # a has 2 watches: no held-out targets, one training example (y after x).
    assert sorted(zip(ex.train["user_id"], ex.train["label"])) == [("a", "y"), ("b", "y")]
    assert ex.test["user_id"].tolist() == ["b"] and ex.test["label"].tolist() == ["w"]


def test_examples_parquet_round_trip(ml_examples, tmp_path):
    from tfrec.features.example_set import ExampleSet
    _, ex = ml_examples
    ex.test.to_parquet(str(tmp_path / "test.parquet"))
    back = ExampleSet.from_parquet(str(tmp_path / "test.parquet"))
    assert back["label"].tolist() == ex.test["label"].tolist()
    assert back["exclusions"].values.tolist() == ex.test["exclusions"].values.tolist()
    assert back["exclusions"].lengths.tolist() == ex.test["exclusions"].lengths.tolist()


def test_tf_data_pipeline_pads_and_masks(ml_examples):
    from tfrec.features.dataset import candidate_dataset
    _, ex = ml_examples
    ds = candidate_dataset(ex.train, batch_size=32, max_history=50, shuffle_seed=0,
                           drop_remainder=True)
    batch = next(iter(ds))
    assert batch["watch_history"].shape == (32, 50)
    assert batch["watch_history"].dtype.name == "string"
    mask = batch["watch_history_mask"].numpy()
    hist = batch["watch_history"].numpy()
    assert ((hist != b"") == mask).all()
    # Real ids first, padding after.
    assert all(row[: row.sum()].all() for row in mask)
    assert set(batch) >= {"video_id", "example_age", "age", "gender", "occupation", "search_tokens"}
    assert len(list(ds)) == len(ex.train) // 32
