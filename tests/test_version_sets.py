"""Exports move as one version set: one number for every servable, models.config pinned to a
complete set, and a kill -9 at any point never leaves a mixed set behind."""
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from tfrec.serving import version_sets

NAMES = ("ranker", "retrieval_brute_force", "retrieval_scann", "user_tower")


@pytest.fixture(scope="module")
def staged(tmp_path_factory):
    """Four real (tiny) SavedModels saved as servable folders, as the pipeline stages them."""
    import tensorflow as tf

    from tfrec.serving.export import save_servable

    class Scale(tf.Module):
        def __init__(self, factor):
            super().__init__()
            self.factor = tf.Variable(factor)
            self.serve = tf.function(lambda x: {"y": x * self.factor},
                                     input_signature=[tf.TensorSpec([None], tf.float32)])

    root = tmp_path_factory.mktemp("staged")
    return {name: save_servable(Scale(float(i + 1)), str(root / name), name, {"run": "t"})
            for i, name in enumerate(NAMES)}


def _versions(base):
    return {n: sorted(int(d) for d in os.listdir(base / n) if d.isdigit()) for n in NAMES}


def _pinned(base):
    text = (base / "models.config").read_text()
    return set(re.findall(r'name: "(\w+)"', text)), {int(v) for v in
                                                     re.findall(r"versions: (\d+) ", text)}


def test_every_servable_gets_one_number_and_models_config_pins_it(staged, tmp_path):
    first = version_sets.publish(tmp_path, staged, log=lambda *_: None)
    second = version_sets.publish(tmp_path, staged, log=lambda *_: None)
    assert (first["version"], second["version"]) == (1, 2)
    assert _versions(tmp_path) == {n: [1, 2] for n in NAMES}
    assert _pinned(tmp_path) == (set(NAMES), {2})
    manifest = json.loads((tmp_path / "user_tower" / "2" / "manifest.json").read_text())
    assert manifest["version"] == 2 and manifest["version_set"] == list(NAMES)
    # The staged copy's manifest is untouched (publish hard-links, then rewrites its own copy).
    assert "version" not in json.loads(open(os.path.join(staged["user_tower"],
                                                         "manifest.json")).read())
    # Rolling back points models.config at the older complete set.
    version_sets.use_version(tmp_path, 1)
    assert _pinned(tmp_path) == (set(NAMES), {1})
    assert version_sets.served_path(tmp_path, "ranker") == str(tmp_path / "ranker" / "1")
    with pytest.raises(version_sets.VersionSetError, match="no complete version set 7"):
        version_sets.use_version(tmp_path, 7)


def test_only_the_newest_sets_are_kept(staged, tmp_path):
    for _ in range(4):
        version_sets.publish(tmp_path, staged, keep=2, log=lambda *_: None)
    assert _versions(tmp_path) == {n: [3, 4] for n in NAMES}
    assert [s["version"] for s in version_sets.version_sets(tmp_path)] == [3, 4]


KILLER = r'''
import os, signal, sys, json
from tfrec.serving import version_sets as vs
point, staged, base = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
placed, real_place, real_write = [], vs._place, vs._write_atomic
def place(*args):
    if point == f"place:{len(placed)}":
        os.kill(os.getpid(), signal.SIGKILL)
    placed.append(real_place(*args))
    return placed[-1]
def write(path, text):
    real_write(path, text)
    if point == "commit" and path.endswith(vs.SETS):
        os.kill(os.getpid(), signal.SIGKILL)
vs._place, vs._write_atomic = place, write
vs.publish(base, staged, log=lambda *_: None)
'''


@pytest.mark.parametrize("point", [f"place:{i}" for i in range(len(NAMES))] + ["commit"])
def test_a_publish_killed_at_any_servable_never_leaves_a_mixed_set(staged, tmp_path, point):
    version_sets.publish(tmp_path, staged, log=lambda *_: None)
    run = subprocess.run([sys.executable, "-c", KILLER, point, json.dumps(staged), str(tmp_path)],
                         capture_output=True, text=True)
    assert run.returncode == -9, run.stderr[-2000:]
    assert version_sets.pending(tmp_path)
    # TF Serving reading models.config still sees set 1 whole, whatever the kill left on disk.
    assert _pinned(tmp_path) == (set(NAMES), {1})
    recovered = version_sets.recover(tmp_path)
    committed = point == "commit"
    assert recovered == {"version": 2, "rolled_back": not committed}
    assert not version_sets.pending(tmp_path)
    expected = [1, 2] if committed else [1]
    assert _versions(tmp_path) == {n: expected for n in NAMES}
    assert _pinned(tmp_path) == (set(NAMES), {expected[-1]})
    hidden = [d for n in NAMES for d in os.listdir(tmp_path / n) if d.startswith(".")]
    assert hidden == []
    # The next publish takes the next free number for every servable.
    assert version_sets.publish(tmp_path, staged, log=lambda *_: None)["version"] == \
        expected[-1] + 1


def test_the_versions_command_lists_and_rolls_back(staged, tmp_path, capsys):
    from tfrec.cli import main
    for _ in range(2):
        version_sets.publish(tmp_path, staged, log=lambda *_: None)
    assert main(["versions", "list", "--saved-models", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("     1 ") and lines[1].startswith("*    2 ")
    assert main(["versions", "use", "1", "--saved-models", str(tmp_path)]) == 0
    assert _pinned(tmp_path)[1] == {1}
    assert main(["versions", "use", "9", "--saved-models", str(tmp_path)]) == 2
    assert "no complete version set 9 (kept: [1, 2])" in capsys.readouterr().err
    np.testing.assert_array_equal(sorted(_versions(tmp_path)["ranker"]), [1, 2])


def test_carry_over_updates_one_servable_and_keeps_the_rest_of_the_served_set(staged, tmp_path):
    version_sets.publish(tmp_path, staged, log=lambda *_: None)
    out = version_sets.publish(tmp_path, {"ranker": staged["ranker"]}, carry_over=True,
                               log=lambda *_: None)
    assert out["version"] == 2 and _versions(tmp_path) == {n: [1, 2] for n in NAMES}
    assert _pinned(tmp_path) == (set(NAMES), {2})
    # Without it (the pipeline's way) a set is exactly what was published.
    version_sets.publish(tmp_path, {"ranker": staged["ranker"]}, log=lambda *_: None)
    assert _pinned(tmp_path) == ({"ranker"}, {3})
