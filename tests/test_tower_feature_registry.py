"""The tower-feature registry: a new feature is one module, and every stage picks it up.

The walkthrough test adds a toy feature, `history_watch_time` (the mean log1p(watch_time) of the
watches before the cut, a [B] float32 input), WITHOUT touching any file of the repository: it
writes the module into a temporary folder and appends that folder to the `tfrec.features.tower`
package's `__path__`, the standard way a package takes more module folders (pkgutil.extend_path
does the same). The registry lists a package's modules from its search path, so the toy is then
a registered feature like the shipped ones, until the fixture removes the folder again.
"""
import importlib
import json
import math
import os
import sys

import numpy as np
import pytest
import tensorflow as tf

from tfrec.config import ConfigError, ExampleConfig, SoftmaxConfig, UserTowerConfig, parse_config
from tfrec.data.movielens import read_recbole
from tfrec.data.schema import write_events
from tfrec.features import tower as tower_package
from tfrec.features.dataset import candidate_dataset, padded_features
from tfrec.features.local_driver import build_candidate_examples
from tfrec.features.ordering import order_watches
from tfrec.features.tower import registered_tower_features, tower_features, watched_inputs
from tfrec.features.tower_registry import TOWER_FEATURES, tower_feature_names
from tfrec.models.training import build_model
from tfrec.serving.candidate_exports import export_candidate_generation
from tfrec.serving.recommend import recommend, user_request

SHIPPED = ("demographics", "example_age", "search_tokens", "watch_history")

# The whole of the toy feature: this text is the file a developer would add as
# tfrec/features/tower/history_watch_time.py (docs/EXTENDING_TOWER_FEATURE.md shows it too).
TOY_FEATURE = '''"""history_watch_time: mean log1p(watch_time) of the watches before the cut.

  example column  history_watch_time  [m] float32 (0 without an earlier watch)
  input           history_watch_time  [B] float32
  encoding        the value itself, one column of the tower's input
"""
from __future__ import annotations

import typing
from collections.abc import Mapping

import numpy as np

from tfrec.features.tower import (Column, Cuts, Encoding, RequestSpec, ServingUser, Tensor,
                                  TowerContext, TowerFeature, TowerInput, UserEvents)
from tfrec.features.tower_registry import register_tower_feature
from tfrec.keras_check import require_keras2

if typing.TYPE_CHECKING:
    from tfrec.config import ExampleConfig, UserTowerConfig


def mean_log1p_before(watch_times: np.ndarray, cuts: np.ndarray) -> np.ndarray:
    """[m] float32 mean log1p(watch_time) of the first cuts[i] watches (0 when cuts[i] = 0)."""
    totals = np.concatenate([[0.0], np.cumsum(np.log1p(watch_times))])
    return np.where(cuts > 0, totals[cuts] / np.maximum(cuts, 1), 0.0).astype(np.float32)


@register_tower_feature("history_watch_time")
class HistoryWatchTime(TowerFeature):
    """How long the user tends to watch, from the watches before the cut."""

    INPUTS = (TowerInput("history_watch_time", "float32"),)

    def example_columns(self, events: UserEvents, cuts: Cuts,
                        config: ExampleConfig) -> dict[str, Column]:
        return {"history_watch_time": mean_log1p_before(events.watches["watch_time"],
                                                        cuts.positions)}

    def encode(self, inputs: Mapping[str, Tensor], tower: UserTowerConfig,
               context: TowerContext) -> Encoding:
        tf = require_keras2()
        column = tf.keras.layers.Reshape((1,), name="history_watch_time_column")
        return Encoding([column(inputs["history_watch_time"])])

    def request_value(self, tower_input: TowerInput, spec: RequestSpec,
                      user: ServingUser) -> np.ndarray:
        watch_times = user.watches["watch_time"].to_numpy(np.float64)
        return mean_log1p_before(watch_times, np.array([len(watch_times)]))
'''
TOY = "history_watch_time"


@pytest.fixture
def toy_feature(tmp_path):
    """The toy feature module in a folder of the tower package's search path (removed after)."""
    folder = tmp_path / "more_tower_features"
    folder.mkdir()
    (folder / f"{TOY}.py").write_text(TOY_FEATURE)
    # In place: the package's __path__ is its spec's submodule_search_locations, which the
    # registry reads.
    tower_package.__path__.append(str(folder))
    yield
    tower_package.__path__.remove(str(folder))
    sys.modules.pop(f"tfrec.features.tower.{TOY}", None)
    importlib.invalidate_caches()


def test_the_shipped_features_are_the_registry_names_in_tower_order():
    assert tower_feature_names() == SHIPPED
    # The tower's (and the example columns') order is the features' own, not the config list's.
    order = [f.name for f in tower_features(["example_age", "demographics", "watch_history",
                                              "search_tokens"])]
    assert order == ["watch_history", "search_tokens", "demographics", "example_age"]
    assert watched_inputs(["age", "example_age", "watch_history"]) == ["watch_history"]
    with pytest.raises(ValueError, match=r"unknown tower feature 'watch_histroy'; choose from "):
        TOWER_FEATURES.get("watch_histroy")


def test_the_config_choices_are_the_registry_names(tmp_path):
    with pytest.raises(ConfigError, match=r"has unknown \['history_watch_time'\]; choose from "
                                          r"\['demographics', 'example_age'"):
        parse_config({"name": "x", "candidate_generation": {"tower": {"features": [TOY]}}},
                     "c.yaml")


@pytest.fixture(scope="module")
def movielens(ml100k_dir):
    """MovieLens-100K (watch_time is the rating), from the test cache."""
    return read_recbole(ml100k_dir)


def test_a_toy_feature_is_one_module_from_config_to_recommend(tmp_path, toy_feature, movielens):
    # 1. It is registered, after the shipped features, and the config accepts it.
    assert tower_feature_names() == tuple(sorted((*SHIPPED, TOY)))
    assert [f.name for f in registered_tower_features()][-1] == TOY
    config = parse_config({"name": "toy", "candidate_generation": {"tower": {
        "features": ["watch_history", "demographics", "example_age", TOY],
        "demographic_columns": ["age"], "embedding_dim": 4, "hidden_units": [8, 4],
        "max_history": 3}}, "examples": {"max_history": 3}}, "c.yaml")
    tower = config.candidate_generation.tower
    assert isinstance(tower, UserTowerConfig) and TOY in tower.features

    # 2. Examples: its column, after the shipped ones, with the mean log1p watch time (MovieLens:
    # the rating) of the watches before each example's cut.
    events = movielens
    ex = build_candidate_examples(events, ExampleConfig(max_history=3, max_examples_per_user=4))
    assert list(ex.train.columns)[:7] == ["label", "timestamp", "example_age", "watches_before",
                                          "watch_history", "search_tokens", TOY]
    ordered = order_watches(events.watches)
    watch_times = {u: g.to_numpy() for u, g in ordered.groupby("user_id")["watch_time"]}
    for split in (ex.train, ex.validation, ex.test):
        expected = [np.log1p(watch_times[user][:cut]).mean() if cut else 0.0
                    for user, cut in zip(split["user_id"], split["watches_before"])]
        np.testing.assert_allclose(split[TOY], expected, rtol=1e-6)
    features = padded_features(ex.train, 3, 64)
    assert features[TOY].dtype == np.float32 and features[TOY].shape == (len(ex.train),)

    # 3. The tower takes it as a [B] float32 input; one training step gives a finite loss.
    tf.keras.utils.set_random_seed(0)
    model = build_model(ex, events.users, events.videos["video_id"].to_numpy(), tower,
                        SoftmaxConfig(loss="full"))
    assert model.user_tower.input[TOY].shape.as_list() == [None]
    assert model.user_tower.get_layer("history_watch_time_column") is not None
    model.compile(optimizer=tf.keras.optimizers.Adam(0.01))
    loss = model.fit(candidate_dataset(ex.train, 64, max_history=3, drop_remainder=True),
                     epochs=1, steps_per_epoch=1, verbose=0).history["loss"]
    assert len(loss) == 1 and math.isfinite(loss[0])

    # 4. The exported user_tower's serving signature names it (as float32).
    base = str(tmp_path / "saved_models")
    out = export_candidate_generation(model, base,
                                      padded_features(ex.validation.take(np.arange(64)), 3, 64),
                                      padded_features(ex.test.take(np.arange(64)), 3, 64),
                                      {"run": "toy", "events_dir": str(tmp_path / "events")},
                                      k=10, log=lambda *_: None)
    serve = tf.saved_model.load(out["paths"]["user_tower"]).signatures["serving_default"]
    declared = serve.structured_input_signature[1]
    assert declared[TOY].dtype == tf.float32
    with open(os.path.join(out["paths"]["user_tower"], "manifest.json")) as f:
        manifest = json.load(f)
    assert manifest["inputs"][TOY] == {"dtype": "float32", "shape": [None]}

    # 5. `tfrec recommend` fills it from the event tables: the mean over all the user's watches.
    write_events(events, str(tmp_path / "events"))
    request, recent = user_request(str(tmp_path / "events"), "3", manifest["inputs"],
                                   manifest.get("max_request_history"))
    assert request[TOY].dtype == np.float32
    np.testing.assert_allclose(request[TOY], [np.log1p(watch_times["3"]).mean()], rtol=1e-6)
    assert request["watch_history"].tolist() == [recent]  # the whole list, newest first
    _, recs, _ = recommend(base, "3", k=10)
    assert len(recs) == 10
    assert not {v for v, _ in recs} & set(recent)  # answered, watched videos excluded
    u = serve(**{name: tf.constant(value) for name, value in request.items()})["user_vector"]
    assert u.shape == (1, 4) and np.isfinite(u.numpy()).all()


def test_a_request_input_no_feature_fills_is_named(tmp_path, movielens):
    write_events(movielens, str(tmp_path / "events"))
    with pytest.raises(ValueError, match=r"no tower feature fills the request input\(s\) "
                                         r"\['history_watch_time'\]"):
        user_request(str(tmp_path / "events"), "3",
                     {"watch_history": {"dtype": "string", "shape": [None, None]},
                      TOY: {"dtype": "float32", "shape": [None]}})
