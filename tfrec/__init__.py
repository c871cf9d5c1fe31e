"""tfrec: the two-stage YouTube recommender (Covington, Adams, Sargin, RecSys 2016).

Importing tfrec selects Keras 2 (tf-keras) for TensorFlow Recommenders, and does nothing else:
TensorFlow itself is imported lazily by the modules that need it. `tfrec.load_run("runs/<name>")`
(`tfrec.runs`) opens a finished run in Python: its config, metrics and trained Keras models.
"""
import os
from typing import Any

__version__ = "0.1.0"

# TFRS 0.7.7 needs Keras 2. TensorFlow reads this variable once, when it is first imported, so it
# must be set before anything imports TensorFlow. `setdefault` respects an explicit user choice;
# `tfrec.keras_check.require_keras2` fails clearly if that choice (or an earlier TF import) broke
# it.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")


def __getattr__(name: str) -> Any:
    """`tfrec.load_run` (tfrec.runs), imported on first use so `import tfrec` stays cheap."""
    if name == "load_run":
        from tfrec.runs import load_run
        return load_run
    raise AttributeError(f"module 'tfrec' has no attribute {name!r}")
