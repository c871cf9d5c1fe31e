import json
import os

import numpy as np
import pytest

from conftest import make_events, three_taste_watches
from tfrec.config import ExampleConfig
from tfrec.features.example_records import (ShardFacts, encode_examples, read_example_set,
                                            read_facts, record_spec, shard_of_rows, write_facts,
                                            write_shards, write_split)
from tfrec.features.example_set import ExampleSet
from tfrec.features.local_driver import build_candidate_examples
from tfrec.features.ragged import Ragged


@pytest.fixture(scope="module")
def tiny_examples():
    """The tiny pipeline world's examples, with searches for a third of the users (so search
    tokens are ragged with empty rows) and a float column."""
    searches = [(f"u{u}", t, f"funny cats {u}") for u in range(0, 30, 3) for t in (2, 7)]
    events = make_events(three_taste_watches(), searches=searches)
    examples = build_candidate_examples(events, ExampleConfig(max_history=5))
    train = examples.train
    train.columns["example_age_hours"] = (train["example_age"] / 3600).astype(np.float32)
    return examples


def assert_same(got: ExampleSet, want: ExampleSet) -> None:
    assert list(got.columns) == list(want.columns)
    for name, col in want.columns.items():
        out = got[name]
        if isinstance(col, Ragged):
            assert isinstance(out, Ragged), name
            assert out.lengths.tolist() == col.lengths.tolist(), name
            assert out.values.dtype == col.values.dtype, name
            assert out.values.tolist() == col.values.tolist(), name
        else:
            assert out.dtype == col.dtype, name
            assert out.tolist() == col.tolist(), name


@pytest.mark.parametrize("split,num_shards", [("train", 3), ("validation", 1)])
def test_shards_round_trip_the_real_examples(tiny_examples, tmp_path, split, num_shards):
    examples = getattr(tiny_examples, split)
    spec = record_spec(examples.columns)
    assert spec["watch_history"] == {"dtype": "string", "ragged": True}
    assert spec["label"] == {"dtype": "string", "ragged": False}
    assert spec["watches_before"] == {"dtype": "int64", "ragged": False}
    tokens = examples["search_tokens"]
    assert (tokens.lengths == 0).any() and (tokens.lengths > 0).any()
    if split == "train":
        assert spec["example_age_hours"] == {"dtype": "float32", "ragged": False}
    paths = write_shards(examples, str(tmp_path), split, num_shards)
    assert [os.path.basename(p) for p in paths] == [
        f"{split}-{i:05d}-of-{num_shards:05d}.tfrecord.gz" for i in range(num_shards)]
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]
    # Shards are read in file order: row i of shard s is the i-th row assigned to s.
    order = np.argsort(shard_of_rows(len(examples), num_shards), kind="stable")
    assert_same(read_example_set(paths, spec), examples.take(order))


def test_records_are_examples_named_as_the_columns(tiny_examples):
    import tensorflow as tf
    examples = tiny_examples.train
    records = list(encode_examples(examples.take([0, 1]).columns, record_spec(examples.columns)))
    parsed = tf.train.Example.FromString(records[1]).features.feature
    assert parsed["label"].bytes_list.value == [examples["label"][1].encode()]
    assert list(parsed["watch_history"].bytes_list.value) == [
        v.encode() for v in examples["watch_history"].row(1)]
    assert parsed["watches_before"].int64_list.value == [examples["watches_before"][1]]
    assert parsed["example_age_hours"].float_list.value == pytest.approx(
        [examples["example_age_hours"][1]])


def test_facts_file_round_trips_and_counts_the_labels(tiny_examples, tmp_path):
    train = tiny_examples.train
    facts = write_split(train, str(tmp_path), "train", 2)
    assert facts.count == len(train)
    assert sum(facts.label_counts.values()) == len(train)
    label, count = np.unique(train["label"], return_counts=True)
    assert facts.label_counts == dict(zip(label.tolist(), count.tolist()))
    assert facts.max_example_age_seconds == float(train["example_age"].max())
    assert facts.bytes == sum(os.path.getsize(p) for p in facts.paths(str(tmp_path)))
    assert read_facts(str(tmp_path), "train") == facts
    assert len(read_example_set(facts.paths(str(tmp_path)), facts.spec)) == len(train)


def test_bad_spec_and_missing_files_are_named(tiny_examples, tmp_path):
    train = tiny_examples.train
    spec = record_spec(train.columns)
    with pytest.raises(ValueError, match="'label'.*dtype must be one of"):
        list(encode_examples(train.columns, {**spec, "label": {"dtype": "str",
                                                                "ragged": False}}))
    with pytest.raises(ValueError, match="'watch_history'.*ragged=False"):
        list(encode_examples(train.columns, {**spec, "watch_history": {"dtype": "string",
                                                                        "ragged": False}}))
    with pytest.raises(ValueError, match=r"\['clicked'\].*missing"):
        list(encode_examples(train.columns, {**spec, "clicked": {"dtype": "float32",
                                                                  "ragged": False}}))
    paths = write_shards(train, str(tmp_path), "train", 2, spec)
    wrong = {**spec, "watches_before": {"dtype": "string", "ragged": False}}
    with pytest.raises(ValueError, match="do not parse with the record spec"):
        read_example_set(paths, wrong)
    missing = str(tmp_path / "train-00007-of-00009.tfrecord.gz")
    with pytest.raises(FileNotFoundError, match="train-00007-of-00009"):
        read_example_set([*paths, missing], spec)
    with pytest.raises(FileNotFoundError, match="train.json"):
        read_facts(str(tmp_path), "train")
    facts = write_split(train, str(tmp_path), "train", 2)
    os.remove(facts.paths(str(tmp_path))[1])
    with pytest.raises(FileNotFoundError, match="train-00001-of-00002"):
        read_facts(str(tmp_path), "train")
    with open(tmp_path / "bad.json", "w") as f:
        json.dump({**facts.to_dict(), "extra": 1}, f)
    with pytest.raises(ValueError, match="bad.json.*exactly the keys"):
        read_facts(str(tmp_path), "bad")
    write_facts(str(tmp_path), "bad", ShardFacts(**{**facts.to_dict(), "spec": {}}))
    with pytest.raises(ValueError, match="bad.json.*non-empty"):
        read_facts(str(tmp_path), "bad")
