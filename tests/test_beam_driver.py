"""The Beam driver builds exactly the local driver's examples (as sets of rows, same seed), on the
simulator and on MovieLens-100K, under P1 and P3; its facts are the local examples' facts."""
import collections
import os

import numpy as np
import pandas as pd
import pytest

from tfrec.config import EvaluationConfig, ExampleConfig
from tfrec.config.errors import ConfigError
from tfrec.config.loading import parse_config
from tfrec.data.movielens import read_recbole
from tfrec.data.schema import read_events, write_events
from tfrec.data.simulator import preset, simulate
from tfrec.features.beam_driver import TRAIN_WATCHES, build_candidate_examples_beam, read_split
from tfrec.features.example_records import read_example_set, read_facts, record_spec
from tfrec.features.local_driver import build_candidate_examples
from tfrec.features.ordering import order_watches
from tfrec.features.ragged import Ragged
from tfrec.pipeline.stages.events import STAGE as EVENTS
from tfrec.pipeline.stages.examples import STAGE as EXAMPLES
from tfrec.stages import run_stages

# A cap that binds for heavy users, so the seeded per-user sample is part of what must agree.
CONFIG = ExampleConfig(max_examples_per_user=30, max_history=20, seed=3)


def _events_dir(events, folder):
    """The events stage's Parquet tables of `events` in `folder`; returns (folder, the tables
    as the examples stage reads them)."""
    write_events(events, str(folder))
    return str(folder), read_events(str(folder))


@pytest.fixture(scope="module")
def tiny_world(tmp_path_factory):
    _, events = simulate(preset("tiny"), seed=0)
    return _events_dir(events, tmp_path_factory.mktemp("tiny_events"))


@pytest.fixture(scope="module")
def movielens(ml100k_dir, tmp_path_factory):
    return _events_dir(read_recbole(ml100k_dir), tmp_path_factory.mktemp("ml_events"))


def rows(examples, spec):
    """Multiset of an ExampleSet's rows, each a tuple of its values as the record spec types
    them (floats as float32, ragged rows as tuples)."""
    names = sorted(spec)
    cast = {"int64": int, "float32": lambda v: float(np.float32(v)), "string": str}
    columns = []
    for name in names:
        col, to = examples[name], cast[spec[name]["dtype"]]
        if isinstance(col, Ragged):
            offsets = col.offsets
            columns.append([tuple(to(v) for v in col.values[offsets[i]:offsets[i + 1]])
                            for i in range(len(col))])
        else:
            columns.append([to(v) for v in col])
    return collections.Counter(zip(*columns))


def assert_same_columns(got, want):
    assert list(got.columns) == list(want.columns)
    for name, col in want.columns.items():
        if isinstance(col, Ragged):
            np.testing.assert_array_equal(got[name].lengths, col.lengths, err_msg=name)
            np.testing.assert_array_equal(got[name].values, col.values, err_msg=name)
        else:
            np.testing.assert_array_equal(got[name], col, err_msg=name)


def assert_same_examples(events_dir, events, folder, protocol, **overrides):
    evaluation = EvaluationConfig(protocol=protocol)
    local = build_candidate_examples(events, CONFIG, protocol=evaluation)
    config = ExampleConfig.model_validate({**CONFIG.model_dump(), "driver": "beam", **overrides})
    built = build_candidate_examples_beam(events_dir, str(folder), config, evaluation,
                                          num_shards=3)
    assert built.end_of_training == local.end_of_training
    assert built.windows == local.windows
    local_sets = {"train": local.train, "validation": local.validation, "test": local.test,
                  **(local.window_queries or {})}
    assert set(built.facts) == set(local_sets)
    for split, local_set in local_sets.items():
        facts = read_facts(str(folder), split)
        assert facts.spec == record_spec(local_set.columns), split
        assert facts.count == len(local_set) > 0, split
        assert len(facts.files) == (3 if split == "train" else 1)
        assert facts.bytes == sum(os.path.getsize(p) for p in facts.paths(str(folder))) > 0
        beam_set = read_example_set(facts.paths(str(folder)), facts.spec)
        assert rows(beam_set, facts.spec) == rows(local_set, facts.spec), split
        assert_same_columns(read_split(str(folder), split), local_set)  # and the local order
        labels = pd.Series(local_set["label"]).value_counts()
        assert facts.label_counts == {str(k): int(v) for k, v in labels.items()}
        assert facts.max_example_age_seconds == float(np.max(local_set["example_age"]))
    watches = order_watches(pd.read_parquet(os.path.join(str(folder),
                                                         f"{TRAIN_WATCHES}.parquet")))
    pd.testing.assert_frame_equal(watches.astype(object), local.train_watches.astype(object))
    users = events.users
    assert built.demographic_vocabularies == {c: sorted(set(users[c].astype(str)))
                                             for c in users.columns if c != "user_id"}
    return local


def test_beam_equals_local_on_the_tiny_world_p3(tiny_world, tmp_path):
    local = assert_same_examples(*tiny_world, tmp_path / "beam", "p3")
    assert len(local.train) > 1000 and local.train["search_tokens"].values.size > 0
    assert len(local.window_queries["test_window"]) > 0


@pytest.mark.parametrize("protocol", ["p1", "p3"])
def test_beam_equals_local_on_movielens(movielens, tmp_path, protocol):
    assert_same_examples(*movielens, tmp_path / "beam", protocol)


def test_beam_equals_local_on_the_tiny_world_p1_with_two_worker_processes(tiny_world, tmp_path):
    assert_same_examples(*tiny_world, tmp_path / "beam", "p1", beam={
        "runner": "DirectRunner",
        "options": {"direct_num_workers": 2, "direct_running_mode": "multi_processing"}})


def test_examples_stage_on_beam_gives_the_local_stage_examples(tiny_world, tmp_path):
    """The examples stage with driver beam (shards, then loaded back) hands later stages what
    the local driver's stage hands them; streaming training finds its shards and facts."""
    loaded = {}
    for driver in ("local", "beam"):
        config = parse_config({"name": "t", "data": {"format": "events", "path": tiny_world[0]},
                               "examples": {"driver": driver, "shards": 2,
                                            "max_examples_per_user": 30}}, "config.yaml")
        os.makedirs(tmp_path / driver)
        values, metrics, _ = run_stages([EVENTS, EXAMPLES], config, str(tmp_path / driver),
                                        log=lambda *_: None)
        loaded[driver] = values["examples"]
        assert metrics["examples"]["train_shards"]["files"] == 2
    local, beam = loaded["local"], loaded["beam"]
    for split in ("train", "validation", "test"):
        assert_same_columns(getattr(beam, split), getattr(local, split))
    pd.testing.assert_frame_equal(beam.train_watches, local.train_watches)
    assert beam.end_of_training == local.end_of_training
    assert read_facts(beam.train_shards, "train").count == len(local.train)


@pytest.mark.slow
@pytest.mark.parametrize("protocol", ["p1", "p3"])
def test_beam_equals_local_on_the_small_world(tmp_path, protocol):
    _, events = simulate(preset("small"), seed=0)
    assert_same_examples(*_events_dir(events, tmp_path / "events"), tmp_path / "beam", protocol)


@pytest.mark.parametrize("examples, message", [
    ({"driver": "spark"}, "examples.driver"),
    ({"beam": {"runner": "MyRunner"}}, "examples.beam.runner"),
    ({"beam": {"options": {"direct_num_wrkers": 2}}},
     "unknown Beam pipeline options ['direct_num_wrkers']"),
    ({"beam": {"options": {"runner": "DataflowRunner"}}}, "set examples.beam.runner"),
    ({"beam": {"workers": 2}}, "examples.beam.workers"),
])
def test_bad_beam_config_is_a_clear_error(examples, message):
    with pytest.raises(ConfigError) as err:
        parse_config({"name": "t", "examples": examples}, "config.yaml")
    assert message in str(err.value)
    print(err.value)
