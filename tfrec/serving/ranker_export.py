"""Export a trained ranker as the `ranker` servable.

  ranker  serving_default: the raw named features (video_id [B] string, watch_history [B, H]
          string, user_language / video_language [B] string, continuous features [B] float32
          each: see `tfrec.models.ranking`) -> logit [B], expected_watch_time [B] (seconds) and,
          with a click head, click_probability [B] and expected_watch_time_corrected [B].
          Stock TF ops only: TF Serving loads it.
"""
import dataclasses
import os

from tfrec.keras_check import require_keras2
from tfrec.serving.export import publish_servables, save_servable
from tfrec.serving.retrieval import serving_signature

tf = require_keras2()
NAME = "ranker"


class RankerServable(tf.Module):
    """Raw ranking features -> the RankingModel's served outputs (with the log(r) correction)."""

    def __init__(self, model, name=None):
        super().__init__(name=name)
        self.model = model
        self.serve = tf.function(lambda features: self.model(features, training=False),
                                 input_signature=[serving_signature(model.scorer)])


def save_ranker(model, folder, features, manifest):
    """Save `model` as the ranker servable folder (SavedModel, warmup, manifest; not yet a
    version: `tfrec.serving.version_sets.publish` makes it one).

    Args:
      model: a trained RankingModel.
      folder: where to write (must not exist yet).
      features: numpy feature dict of real examples (e.g. `ranking_features` of validation);
        its first two rows become the warmup request.
      manifest: run facts for manifest.json (run name, metrics...).
    Returns:
      `folder`.
    """
    signature = {n: {"dtype": s.dtype.name, "shape": s.shape.as_list()}
                 for n, s in serving_signature(model.scorer).items()}
    warmup = [{n: features[n][:2] for n in model.scorer.input}]
    outputs = list(model.served_output_names())
    # Keras warns that the subclassed RankingModel has no get_config: the SavedModel serves the
    # servable's signature, not a Keras config, so the warning is noise here.
    logger, level = tf.get_logger(), tf.get_logger().level
    logger.setLevel("ERROR")
    try:
        return save_servable(RankerServable(model), folder, NAME,
                             {**manifest, "inputs": signature, "outputs": outputs,
                              "logit_offset": model.logit_offset,
                              "logit_scale": float(model.logit_scale.numpy()),
                              "logit_shift": float(model.logit_shift.numpy()),
                              "ranking_config": dataclasses.asdict(model.config)},
                             warmup_requests=warmup)
    finally:
        logger.setLevel(level)


def export_ranker(model, base_dir, features, manifest, keep=3, log=print):
    """`save_ranker`, then publish it alone as a new version set of `base_dir` (the pipeline
    publishes it together with the retrieval servables instead).

    Returns:
      The version folder <base_dir>/ranker/<N>.
    """
    out = publish_servables(
        lambda staging: {NAME: save_ranker(model, os.path.join(staging, NAME), features,
                                           manifest)},
        base_dir, keep=keep, run=manifest.get("run"), log=log)
    log(f"  exported {out['paths'][NAME]}")
    return out["paths"][NAME]
