"""Training that streams from TFRecord shards (`examples.shards` > 0): the batches, the pipeline
end to end, and resume after a crash."""
import dataclasses
import json

import numpy as np
import pandas as pd
import pytest

from conftest import make_events, three_taste_watches
from tiny_pipeline import write_tiny_pipeline
from tfrec.config import ExampleConfig, SoftmaxConfig, TrainingConfig, UserTowerConfig, \
    load_config
from tfrec.data.schema import write_events
from tfrec.features.dataset import EpochBatches
from tfrec.features.example_records import read_facts, write_split
from tfrec.features.local_driver import build_candidate_examples
from tfrec.features.shard_dataset import ShardBatches
from tfrec.models.training import model_artifacts, train_candidate_generation
from tfrec.pipeline import run_pipeline

TOWER = UserTowerConfig(embedding_dim=8, hidden_units=(16, 8), max_history=5,
                        features=("watch_history", "search_tokens", "example_age"))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """(events, CandidateExamples streaming from 2 shards) of the tiny three-taste world."""
    events = make_events(three_taste_watches(), searches=[("u1", 3, "cats and dogs")])
    examples = build_candidate_examples(events, ExampleConfig(max_history=5))
    folder = str(tmp_path_factory.mktemp("shards"))
    write_split(examples.train, folder, "train", 2)
    return events, dataclasses.replace(examples, train_shards=folder)


def _rows(batches):
    """Sorted tuples, one per example, of every feature of a dataset's batches."""
    rows = []
    for batch in batches:
        values = {k: v.numpy() for k, v in batch.items()}
        for i in range(len(values["user_id"])):
            rows.append(tuple((k, v[i].tobytes() if v.dtype != object else tuple(
                np.atleast_1d(v[i]).astype(str).tolist())) for k, v in sorted(values.items())))
    return sorted(rows)


def test_streamed_batches_are_the_in_memory_features_in_a_seeded_order(tiny):
    _, examples = tiny
    facts = read_facts(examples.train_shards, "train")
    size = len(examples.train)
    batch = 27  # divides the 270 examples: every example in one epoch
    assert size % batch == 0
    shards = ShardBatches.from_facts(facts, examples.train_shards, batch, max_history=5,
                                     max_search_tokens=4, seed=3, shuffle_buffer=64)
    memory = EpochBatches(examples.train, batch, 5, 4, seed=3)
    assert shards.steps == memory.steps == size // batch
    streamed, in_memory = list(shards.epoch(1)), list(memory.epoch(1))
    assert len(streamed) == shards.steps
    first, expected = streamed[0], in_memory[0]
    assert list(first) == list(expected)  # same names, in the same order
    for name in expected:
        assert first[name].dtype == expected[name].dtype, name
        assert first[name].shape == expected[name].shape, name
    assert _rows(streamed) == _rows(in_memory)  # the same examples, padded the same way
    order = [b["user_id"].numpy().tolist() for b in streamed]
    assert order == [b["user_id"].numpy().tolist() for b in shards.epoch(1)]
    assert order != [b["user_id"].numpy().tolist() for b in shards.epoch(2)]


def test_artifacts_from_the_facts_file_equal_those_from_the_examples(tiny):
    events, examples = tiny
    corpus = events.videos["video_id"].to_numpy()
    streamed = model_artifacts(examples, events.users, corpus)
    in_memory = model_artifacts(dataclasses.replace(examples, train_shards=None), events.users,
                                corpus)
    assert streamed == in_memory
    assert sum(streamed["label_counts"]) == len(examples.train)


class Crash(Exception):
    pass


def test_streaming_training_resumes_after_a_crash_to_the_same_metrics(tiny, tmp_path):
    events, examples = tiny
    corpus = events.videos["video_id"].to_numpy()
    softmax = SoftmaxConfig(num_negatives=7, use_bias=True)
    training = TrainingConfig(epochs=3, patience=10, batch_size=16, seed=1, shuffle_buffer=100)

    def train(checkpoint_dir, log):
        return train_candidate_generation(examples, events.users, corpus, TOWER, softmax,
                                          training, log=log, checkpoint_dir=checkpoint_dir)[1]

    whole = train(None, lambda *_: None)

    def crash_in_epoch_2(line):
        if "epoch 2:" in line:  # epoch 2 trained, not yet checkpointed
            raise Crash()
    with pytest.raises(Crash):
        train(str(tmp_path / "ckpt"), crash_in_epoch_2)
    lines = []
    resumed = train(str(tmp_path / "ckpt"), lines.append)
    assert any("resumed from" in line and "(epoch 1)" in line for line in lines), lines
    for key in ("validation", "test"):
        assert resumed[key] == pytest.approx(whole[key], abs=1e-6), key
    assert len(resumed["history"]) == len(whole["history"]) == 3
    for got, want in zip(resumed["history"], whole["history"]):
        for name, value in want.items():
            if "seconds" not in name:
                assert got[name] == pytest.approx(value, abs=1e-6), (want["epoch"], name)


def test_pipeline_with_shards_trains_by_streaming_and_learns(tmp_path):
    write_events(make_events(three_taste_watches()), str(tmp_path / "events"))
    config = write_tiny_pipeline(tmp_path / "tiny.yaml", tmp_path / "events",
                                 tmp_path / "saved_models", {
                                     "examples": {"shards": 2},
                                     "candidate_generation": {"training": {
                                         "epochs": 6, "patience": 6, "learning_rate": 0.01}},
                                     "export": {"enabled": False}})
    metrics = run_pipeline(load_config(config), runs_dir=str(tmp_path / "runs"),
                           log=lambda *_: None, report=False)
    run = tmp_path / "runs" / "tiny"
    facts = read_facts(str(run / "examples" / "shards"), "train")
    assert metrics["examples"]["train_shards"] == {"files": 2, "bytes": facts.bytes}
    assert facts.count == metrics["examples"]["train"]
    train = pd.read_parquet(run / "examples" / "train.parquet")
    with open(run / "candidate_generation" / "weights" / "model.artifacts.json") as f:
        artifacts = json.load(f)
    counts = train["label"].value_counts()
    assert artifacts["label_counts"] == [int(counts.get(v, 0)) for v in artifacts["video_ids"]]
    losses = [h["loss"] for h in metrics["retrieval"]["history"]]
    assert losses[-1] < losses[0]
    retrieval, popularity = metrics["retrieval"]["test"], metrics["popularity"]["test"]
    assert retrieval["recall@10"] > popularity["recall@10"]
