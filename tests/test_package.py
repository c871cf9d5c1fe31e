import os
import subprocess
import sys

import pytest

ENV = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}


def _python(code, env=ENV):
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)


def test_import_selects_keras2_and_does_not_import_tensorflow():
    out = _python("import os, sys, tfrec; print(os.environ['TF_USE_LEGACY_KERAS'], "
                  "'tensorflow' in sys.modules)")
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["1", "False"]


def test_keras2_is_what_tensorflow_gives_after_import_tfrec():
    out = _python("import tfrec; from tfrec.keras_check import require_keras2; "
                  "tf = require_keras2(); print(tf.keras.Model.__module__.split('.')[0])")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith("tf_keras")


def test_keras3_gives_a_clear_error():
    env = dict(ENV, TF_USE_LEGACY_KERAS="0")
    out = _python("import tfrec; from tfrec.keras_check import require_keras2; require_keras2()",
                  env)
    assert out.returncode != 0
    assert "tfrec needs Keras 2" in out.stderr


@pytest.mark.parametrize("args", [["--version"], ["run", "--help"]])
def test_cli_basics(args):
    out = subprocess.run([sys.executable, "-m", "tfrec.cli", *args], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "tfrec" in out.stdout
