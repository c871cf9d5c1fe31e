"""The loss and label-probability registries: names from the package folders, classes on demand,
the config's choices from them, and no TensorFlow for a config check."""
import subprocess
import sys

import pytest

from tfrec.config import ConfigError, load_config
from tfrec.losses.registry import (LABEL_PROBABILITIES, LOSSES, Registry,
                                   label_probability_names, loss_names)


def test_the_registries_list_the_shipped_losses_and_sources():
    assert loss_names() == ("full", "in_batch", "mixed", "sampled")
    assert label_probability_names() == ("counts", "streaming")


@pytest.mark.parametrize("registry,base", [
    (LOSSES, "tfrec.losses.softmax.CandidateSoftmaxLoss"),
    (LABEL_PROBABILITIES, "tfrec.losses.label_probability.LabelProbability")])
def test_each_name_gets_its_registered_class(registry, base):
    module, _, name = base.rpartition(".")
    base_class = getattr(__import__(module, fromlist=[name]), name)
    for entry in registry.names():
        cls = registry.get(entry)
        assert cls.name == entry and issubclass(cls, base_class)
        assert cls.__module__ == f"{registry.package}.{entry}"


def test_an_unknown_name_is_refused_naming_the_choices():
    with pytest.raises(ValueError, match=r"unknown loss 'softmaxx'; choose from \('full', "):
        LOSSES.get("softmaxx")
    with pytest.raises(ValueError, match="unknown label_probability 'guess'"):
        LABEL_PROBABILITIES.get("guess")


PLUGIN_INIT = """from tfrec.losses.registry import Registry
REGISTRY = Registry("loss", "extra_losses")
"""
PLUGIN_LOSS = """from extra_losses import REGISTRY
from tfrec.losses.softmax.full import FullSoftmax


@REGISTRY.register("doubled_full")
class DoubledFull(FullSoftmax):
    def per_example_loss(self, queries, label_rows, table, bias=None):
        return 2.0 * super().per_example_loss(queries, label_rows, table, bias)
"""


def test_a_new_entry_is_one_module_with_a_registered_class(tmp_path, monkeypatch):
    """What adding a loss takes: one file in the package; its name is listed before import."""
    package = tmp_path / "extra_losses"
    package.mkdir()
    (package / "__init__.py").write_text(PLUGIN_INIT)
    (package / "doubled_full.py").write_text(PLUGIN_LOSS)
    (package / "_helpers.py").write_text("")  # private modules are not entries
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = __import__("extra_losses").REGISTRY
    assert registry.names() == ("doubled_full",)
    assert "extra_losses.doubled_full" not in sys.modules
    assert registry.get("doubled_full").__name__ == "DoubledFull"
    with pytest.raises(ValueError, match="must be defined in module extra_losses.tripled"):
        registry.register("tripled")(type("Tripled", (), {}))
    monkeypatch.delitem(sys.modules, "extra_losses")
    monkeypatch.delitem(sys.modules, "extra_losses.doubled_full")


def test_a_module_that_registers_nothing_is_an_error(tmp_path, monkeypatch):
    package = tmp_path / "empty_losses"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "nothing.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ValueError, match="module empty_losses.nothing registers no loss"):
        Registry("loss", "empty_losses").get("nothing")
    monkeypatch.delitem(sys.modules, "empty_losses")
    monkeypatch.delitem(sys.modules, "empty_losses.nothing")


def _config(tmp_path, softmax):
    path = tmp_path / "c.yaml"
    path.write_text("name: x\ncandidate_generation:\n  softmax:\n" + softmax)
    return str(path)


def test_the_config_choices_are_the_registry_names(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_config(_config(tmp_path, "    loss: softmaxx\n"))
    assert f"'candidate_generation.softmax.loss' must be one of {loss_names()}" in str(err.value)
    with pytest.raises(ConfigError) as err:
        load_config(_config(tmp_path, "    label_probability: guess\n"))
    assert (f"'candidate_generation.softmax.label_probability' must be one of "
            f"{label_probability_names()}") in str(err.value)
    for name in loss_names():
        assert load_config(_config(tmp_path, f"    loss: {name}\n")).candidate_generation \
            .softmax.loss == name


def test_checking_a_config_imports_no_tensorflow(tmp_path):
    path = _config(tmp_path, "    loss: mixed\n    label_probability: streaming\n")
    code = (f"import sys; from tfrec.config import load_config; load_config({path!r}); "
            "print('tensorflow' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


TOY_LOSS = '''"""A toy loss: the full softmax with every logit scaled by a temperature of 0.5."""
from tfrec.losses.registry import register_loss
from tfrec.losses.softmax.full import FullSoftmax


@register_loss("tempered_full")
class TemperedFull(FullSoftmax):
    def per_example_loss(self, queries, label_rows, table, bias=None):
        return super().per_example_loss(2.0 * queries, label_rows, table,
                                        None if bias is None else 2.0 * bias)
'''


def test_a_toy_loss_is_one_new_file_and_trains_one_step(tmp_path, monkeypatch):
    """The README's "Extending" walkthrough: one module in a folder on the loss package's path
    (in the repository: tfrec/losses/softmax/), and the config, the task and training take it."""
    import numpy as np
    import tensorflow as tf

    import tfrec.losses.softmax
    from conftest import make_events, three_taste_watches
    from tfrec.config import ExampleConfig, SoftmaxConfig, UserTowerConfig
    from tfrec.features.dataset import candidate_dataset
    from tfrec.features.local_driver import build_candidate_examples
    from tfrec.models.training import build_model

    (tmp_path / "tempered_full.py").write_text(TOY_LOSS)
    monkeypatch.setattr(tfrec.losses.softmax, "__path__",
                        [*tfrec.losses.softmax.__path__, str(tmp_path)])
    monkeypatch.delitem(sys.modules, "tfrec.losses.softmax.tempered_full", raising=False)
    assert "tempered_full" in loss_names()
    assert load_config(_config(tmp_path, "    loss: tempered_full\n")) \
        .candidate_generation.softmax.loss == "tempered_full"

    events = make_events(three_taste_watches())
    examples = build_candidate_examples(events, ExampleConfig(max_history=5))
    tower = UserTowerConfig(embedding_dim=8, hidden_units=(16, 8), max_history=5,
                            features=("watch_history",))
    losses = {}
    for name in ("full", "tempered_full"):
        tf.keras.utils.set_random_seed(0)
        model = build_model(examples, events.users, events.videos["video_id"].to_numpy(), tower,
                            SoftmaxConfig(loss=name, use_bias=True))
        batch = next(iter(candidate_dataset(examples.train, 16, max_history=5)))
        losses[name] = float(model.compute_loss(batch, training=False))
        model.compile(optimizer=tf.keras.optimizers.Adam(0.01))
        step = model.fit(tf.data.Dataset.from_tensors(batch), epochs=1, verbose=0)
        assert np.isfinite(step.history["loss"]).all()
    # Same initial weights, doubled logits: a different (finite) loss, so the toy one ran.
    assert np.isfinite(losses["tempered_full"]) and losses["tempered_full"] != losses["full"]
    monkeypatch.delitem(sys.modules, "tfrec.losses.softmax.tempered_full")
