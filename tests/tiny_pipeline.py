"""The tiny pipeline config the end-to-end tests share: one base, and each test's overrides.

30 users x 12 watches (`conftest.three_taste_watches`), a 5-long history, a [16, 8] tower and
two epochs: seconds per run. A test states only what it changes (`overrides`, merged key by key).
"""
import copy
import os

import yaml

TINY_PIPELINE = {
    "name": "tiny",
    "data": {"format": "events", "path": None},  # set by `tiny_pipeline`
    "examples": {"max_history": 5},
    "candidate_generation": {
        "tower": {"features": ["watch_history", "example_age"], "embedding_dim": 8,
                  "hidden_units": [16, 8], "max_history": 5, "dropout": 0.2},
        "softmax": {"num_negatives": 7, "use_bias": True},
        "training": {"epochs": 2, "batch_size": 16},
    },
    "export": {"k": 10, "saved_models_dir": None},  # set by `tiny_pipeline`
}

# A ranker small enough for the tiny world (pages of 10 retrieved, 3 negatives each).
TINY_RANKING = {
    "enabled": True, "cross_fit_folds": 0,
    "retrieved_impressions": {"top_n": 10, "negatives_per_page": 3},
    "model": {"hidden_units": [8], "embedding_dim": 8, "quantiles": 10, "max_history": 5,
              "epochs": 1, "batch_size": 64},
}


def merged(base: dict, overrides: dict) -> dict:
    """A copy of `base` with `overrides` merged in: nested dicts key by key, other values
    replaced."""
    out = copy.deepcopy(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merged(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def tiny_pipeline(events: os.PathLike | str, saved_models: os.PathLike | str,
                  overrides: dict | None = None) -> dict:
    """The tiny config (a dict, as YAML would give) reading `events`, exporting to
    `saved_models`, with `overrides` merged in."""
    config = merged(TINY_PIPELINE, {"data": {"path": str(events)},
                                    "export": {"saved_models_dir": str(saved_models)}})
    return merged(config, overrides or {})


def write_tiny_pipeline(path: os.PathLike | str, events: os.PathLike | str,
                        saved_models: os.PathLike | str, overrides: dict | None = None) -> str:
    """Write the tiny config as YAML to `path`; returns the path as a string."""
    with open(path, "w") as f:
        yaml.safe_dump(tiny_pipeline(events, saved_models, overrides), f, sort_keys=False)
    return str(path)
