"""SavedModel export for TF Serving: checked for finite weights, with warmup records and a
manifest, published as one version set.

Layout: <base>/<name>/<version>/ (saved_model.pb, variables/,
assets.extra/tf_serving_warmup_requests, manifest.json). Servables are saved into hidden staging
folders first, then published together under one version number (`tfrec.serving.version_sets`):
a version folder appears whole or not at all, and TF Serving ignores non-numeric folder names.
"""
import datetime
import json
import os
import shutil
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np

from tfrec.tf_keras2 import tf
from tfrec.models.finite import check_finite_variables
from tfrec.serving import version_sets

WARMUP_FILE = "tf_serving_warmup_requests"


def write_warmup_requests(path: str, model_name: str,
                          requests: Iterable[Mapping[str, np.ndarray]]) -> None:
    """Write PredictionLog records TF Serving replays at load time (needs tensorflow-serving-api).

    Args:
      requests: list of {input name: numpy array} with a batch dimension.
    """
    from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with tf.io.TFRecordWriter(path) as writer:
        for inputs in requests:
            request = predict_pb2.PredictRequest(
                model_spec=model_pb2.ModelSpec(name=model_name, signature_name="serving_default"))
            for key, value in inputs.items():
                request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
            log = prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(log.SerializeToString())


def save_servable(module: tf.Module, folder: str, name: str, manifest: Mapping[str, Any],
                  warmup_requests: Iterable[Mapping[str, np.ndarray]] = (), scann: bool = False
                  ) -> str:
    """Save `module`'s signatures (its `signatures()`, else `serve` as serving_default) as a
    servable folder: SavedModel, warmup records and manifest.json, not yet a version
    (`tfrec.serving.version_sets.publish` makes it one).

    Args:
      module: a tf.Module with a `serve` tf.function that has an input signature, and optionally
        a `signatures()` method returning {name: tf.function}.
      folder: where to write (must not exist yet).
      name: model name (for the warmup requests and the manifest).
      manifest: JSON-serialisable dict, written as manifest.json (plus name and time).
      warmup_requests: example inputs for assets.extra/tf_serving_warmup_requests.
      scann: the module uses ScaNN ops (saved with the Scann op namespace allowed).
    Raises:
      NonFiniteError: a variable holds NaN or infinity (nothing is written).
    """
    check_finite_variables(module.variables, name)
    options = tf.saved_model.SaveOptions(namespace_whitelist=["Scann"] if scann else None)
    signatures = module.signatures() if hasattr(module, "signatures") else {
        "serving_default": module.serve}
    tf.saved_model.save(module, folder, signatures=signatures, options=options)
    requests = list(warmup_requests)
    if requests:
        write_warmup_requests(os.path.join(folder, "assets.extra", WARMUP_FILE), name, requests)
    with open(os.path.join(folder, "manifest.json"), "w") as f:
        json.dump({"name": name, "exported_at": datetime.datetime.now(
            datetime.timezone.utc).isoformat(), "requires_scann_ops": bool(scann), **manifest},
            f, indent=2)
    return folder


def publish_servables(save_all: Callable[[str], Mapping[str, str]], base_dir: str, keep: int = 3,
                      run: str | None = None, log: Callable[[str], object] = print,
                      carry_over: bool = False) -> dict[str, Any]:
    """Write servables into a hidden staging folder of `base_dir`, then publish them as one
    version set (`version_sets.publish`); the staging folder is removed either way.

    Args:
      save_all: callable(staging folder) -> {name: servable folder inside it}.
      carry_over: see `version_sets.publish`.
    Returns:
      publish's {"version", "paths", "models_config"}.
    """
    base_dir = os.path.abspath(base_dir)
    os.makedirs(base_dir, exist_ok=True)
    staging = os.path.join(base_dir, f".staging-{uuid.uuid4().hex}")
    os.makedirs(staging)
    try:
        return version_sets.publish(base_dir, save_all(staging), keep=keep, run=run, log=log,
                                    carry_over=carry_over)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def export_servable(module: tf.Module, base_dir: str, name: str, manifest: Mapping[str, Any],
                    warmup_requests: Iterable[Mapping[str, np.ndarray]] = (),
                    scann: bool = False, keep: int = 3) -> str:
    """`save_servable`, then publish it as a new version set of `base_dir` that keeps the served
    set's other servables.

    Returns:
      The version folder <base_dir>/<name>/<N>.
    """
    out = publish_servables(
        lambda staging: {name: save_servable(module, os.path.join(staging, name), name,
                                             manifest, warmup_requests, scann)},
        base_dir, keep=keep, run=manifest.get("run"), log=lambda *_: None, carry_over=True)
    return out["paths"][name]
