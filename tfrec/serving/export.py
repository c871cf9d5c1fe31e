"""SavedModel export for TF Serving: versioned, atomic, with warmup records and a manifest.

Layout: <base>/<name>/<version>/ (saved_model.pb, variables/, assets.extra/tf_serving_warmup_requests,
manifest.json). A version is written under a hidden temporary folder and renamed into place, so it
appears whole or not at all; TF Serving ignores non-numeric folder names.
"""
import datetime
import json
import os
import shutil
import uuid

from tfrec.keras_check import require_keras2

tf = require_keras2()

WARMUP_FILE = "tf_serving_warmup_requests"


def next_version(model_dir):
    """1 + the largest integer version folder in model_dir (1 if none)."""
    if not os.path.isdir(model_dir):
        return 1
    versions = [int(d) for d in os.listdir(model_dir) if d.isdigit()]
    return max(versions, default=0) + 1


def write_warmup_requests(path, model_name, requests):
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


def export_servable(module, base_dir, name, manifest, warmup_requests=(), scann=False):
    """Save `module`'s signatures (its `signatures()`, else `serve` as serving_default) as a new
    version of `name`.

    Args:
      module: a tf.Module with a `serve` tf.function that has an input signature, and optionally
        a `signatures()` method returning {name: tf.function}.
      base_dir: the saved_models folder.
      name: model name (folder).
      manifest: JSON-serialisable dict, written as manifest.json (plus name, version, time).
      warmup_requests: example inputs for assets.extra/tf_serving_warmup_requests.
      scann: the module uses ScaNN ops (saved with the Scann op namespace allowed).
    Returns:
      The version folder.
    """
    model_dir = os.path.join(os.path.abspath(base_dir), name)
    os.makedirs(model_dir, exist_ok=True)
    staging = os.path.join(model_dir, f".incomplete-{uuid.uuid4().hex}")
    try:
        options = tf.saved_model.SaveOptions(namespace_whitelist=["Scann"] if scann else None)
        signatures = module.signatures() if hasattr(module, "signatures") else {
            "serving_default": module.serve}
        tf.saved_model.save(module, staging, signatures=signatures, options=options)
        if warmup_requests:
            write_warmup_requests(os.path.join(staging, "assets.extra", WARMUP_FILE), name,
                                  list(warmup_requests))
        for _ in range(100):  # another exporter may take a number first: try the next one
            version = next_version(model_dir)
            with open(os.path.join(staging, "manifest.json"), "w") as f:
                json.dump({"name": name, "version": version,
                           "exported_at": datetime.datetime.now(
                               datetime.timezone.utc).isoformat(),
                           "requires_scann_ops": bool(scann), **manifest}, f, indent=2)
            final = os.path.join(model_dir, str(version))
            try:
                os.rename(staging, final)  # atomic; fails if the folder exists and is not empty
                return final
            except OSError:
                if not os.path.isdir(final):
                    raise
        raise RuntimeError(f"could not find a free version number in {model_dir}")
    finally:
        if os.path.isdir(staging):
            shutil.rmtree(staging)


def write_models_config(base_dir, names):
    """saved_models/models.config: a TF Serving --model_config_file listing the models."""
    entries = "".join(
        f'  config {{\n    name: "{n}"\n    base_path: "{os.path.join(os.path.abspath(base_dir), n)}"'
        f'\n    model_platform: "tensorflow"\n  }}\n' for n in names)
    path = os.path.join(base_dir, "models.config")
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write("model_config_list {\n" + entries + "}\n")
    os.replace(tmp, path)
    return path
