"""The ranker feature registry: the groups are the modules of tfrec/features/ranker/, a new group
is one file (its page column, its input, its encoding), and the config's choices come from it."""
import json
import subprocess
import sys

import numpy as np
import pytest

import tfrec.features.ranker as ranker_package
from ranking_fixture import simulated_world
from tfrec.config import ConfigError, RankingConfig, load_config
from tfrec.features.ranker import RANKER_FEATURES, ranker_feature_names

SHIPPED = ("cg_score", "continuous", "language", "video_id", "watch_history")

# A toy group, as a user would write it: the impression's position on its page, computed
# offline from the impressions, fed to the ranker as log(1 + position).
TOY_FEATURE = '''
import numpy as np

from tfrec.features.ranker import register_ranker_feature
from tfrec.features.ranker._base import RankerFeature, RankerInput
from tfrec.tf_keras2 import tf


@register_ranker_feature("page_position")
class PagePosition(RankerFeature):
    slot = 60
    page_columns = ("page_position",)

    def inputs(self, config):
        return (RankerInput("page_position", "float32"),)

    def compute_page_columns(self, pages):
        return {"page_position": pages.impressions["position"].to_numpy(np.float64)}

    def encode(self, context):
        return [tf.math.log1p(context.input("page_position"))[:, None]]
'''


@pytest.fixture
def toy_feature(tmp_path, monkeypatch):
    """The toy group's module in a folder on the package's path (removed afterwards)."""
    (tmp_path / "page_position.py").write_text(TOY_FEATURE)
    path = ranker_package.__path__
    path.append(str(tmp_path))  # in place: the package's spec shares this list
    try:
        yield "page_position"
    finally:
        path.remove(str(tmp_path))
        sys.modules.pop("tfrec.features.ranker.page_position", None)


def test_the_registry_lists_the_shipped_groups_and_their_classes():
    assert ranker_feature_names() == SHIPPED
    for name in SHIPPED:
        cls = RANKER_FEATURES.get(name)
        assert cls.name == name and cls.__module__ == f"tfrec.features.ranker.{name}"
    with pytest.raises(ValueError, match=r"unknown ranker feature 'colour'; choose from "
                                         r"\('cg_score', 'continuous'"):
        RANKER_FEATURES.get("colour")


def test_a_toy_group_is_one_file_and_trains_and_exports(toy_feature, tmp_path):
    from tfrec.features.ranking_examples import build_ranking_examples, split_by_time
    from tfrec.models.ranking_training import ranking_features, train_ranker
    from tfrec.serving.ranker_export import export_ranker

    assert toy_feature in ranker_feature_names()
    events = simulated_world(n_users=30, n_videos=12, pages_per_user=6, page_size=4, seed=1)
    examples = build_ranking_examples(events, max_history=3)
    # Its page column is computed with the others, after the shipped groups' columns.
    np.testing.assert_array_equal(examples["page_position"], examples["position"])
    columns = list(examples.columns)
    assert columns.index("page_position") == columns.index("video_age_seconds") + 1
    train, validation, _ = split_by_time(examples, 0.2, 0.0)
    config = RankingConfig(features=("video_id", toy_feature), hidden_units=(), embedding_dim=2,
                           max_history=3, epochs=1, patience=1, batch_size=4096,
                           calibrate=False)
    model, result = train_ranker(train, validation, config, events.videos["video_id"],
                                 log=lambda *_: None)
    assert result["epochs_run"] == 1 and np.isfinite(result["validation"]["click_auc"])
    assert list(model.scorer.input) == ["video_id", toy_feature]
    # The position reaches the logit: the same video at another position scores differently.
    probe = {"video_id": np.array(["v0", "v0"], dtype=object),
             "page_position": np.array([0.0, 3.0], np.float32)}
    logits = model(probe)["logit"].numpy()
    assert abs(logits[0] - logits[1]) > 1e-6
    features = ranking_features(validation, list(model.scorer.input), config.max_history)
    path = export_ranker(model, str(tmp_path / "served"), features, {"run": "toy"},
                         log=lambda *_: None)
    manifest = json.load(open(f"{path}/manifest.json"))
    assert manifest["inputs"][toy_feature] == {"dtype": "float32", "shape": [None]}
    import tensorflow as tf
    signature = tf.saved_model.load(path).signatures["serving_default"]
    assert toy_feature in signature.structured_input_signature[1]
    served = signature(video_id=tf.constant(probe["video_id"].astype(str)),
                       page_position=tf.constant(probe["page_position"]))
    np.testing.assert_allclose(served["logit"].numpy(), logits, rtol=1e-5, atol=1e-6)


def _config(tmp_path, features, cg_enabled=True):
    path = tmp_path / "c.yaml"
    path.write_text(f"name: x\ncandidate_generation:\n  enabled: {str(cg_enabled).lower()}\n"
                    f"export:\n  enabled: false\nranking:\n  enabled: true\n  model:\n"
                    f"    features: [{', '.join(features)}]\n")
    return str(path)


def test_the_config_choices_are_the_registry_names(tmp_path, toy_feature):
    with pytest.raises(ConfigError) as err:
        load_config(_config(tmp_path, ["video_id", "colour"]))
    message = str(err.value)
    assert "'ranking.model.features'" in message and "unknown ['colour']" in message
    assert f"choose from {list(ranker_feature_names())}" in message and toy_feature in message
    config = load_config(_config(tmp_path, ["video_id", toy_feature]))
    assert config.ranking.model.features == ("video_id", toy_feature)


def test_a_group_that_needs_the_generator_is_refused_without_it(tmp_path):
    with pytest.raises(ConfigError, match="cg_score needs 'candidate_generation.enabled'"):
        load_config(_config(tmp_path, ["video_id", "cg_score"], cg_enabled=False))
    assert load_config(_config(tmp_path, ["video_id"], cg_enabled=False)).ranking.enabled


def test_checking_the_ranking_features_imports_no_tensorflow(tmp_path):
    path = _config(tmp_path, list(SHIPPED))
    code = (f"import sys; from tfrec.config import load_config; load_config({path!r}); "
            "print('tensorflow' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
