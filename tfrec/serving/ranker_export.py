"""Export a trained ranker as the `ranker` servable.

  ranker  serving_default: the raw named features, the inputs its configured feature groups
          declare (tfrec/features/ranker/: video_id [B] string, watch_history [B, H] string,
          user_language / video_language [B] string, continuous features [B] float32 each; see
          `tfrec.models.ranking`) -> logit [B], expected_watch_time [B] (seconds) and,
          with a click head, click_probability [B] and expected_watch_time_corrected [B].
          Stock TF ops only: TF Serving loads it.
          The request is checked first (`tfrec.serving.request_checks`): wrong ranks, widths,
          batch sizes and NaN / inf fail with INVALID_ARGUMENT naming the input. Finite
          extremes are answered: the 0/1 indicators are clamped to [0, 1], and the continuous
          inputs' EmpiricalCDF maps values beyond the training range to 0 or 1, so -1e30 / 1e30
          answer as values just beyond the smallest / largest training value (finite outputs).
"""
import os
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from tfrec.tf_keras2 import tf
from tfrec.models.ranking import RankingModel, indicator_input_names
from tfrec.serving.export import publish_servables, save_servable
from tfrec.serving.request_checks import checked_request, relaxed_signature
from tfrec.serving.retrieval import serving_signature
NAME = "ranker"


class RankerServable(tf.Module):
    """Raw ranking features -> the RankingModel's served outputs (with the log(r) correction),
    after the request checks (module docstring)."""

    def __init__(self, model: RankingModel, name: str | None = None) -> None:
        super().__init__(name=name)
        self.model = model
        self.specs = serving_signature(model.scorer)
        # The indicators enter the tower as they are: 1e30 there would overflow exp(logit).
        self.ranges = {n: (0.0, 1.0) for n in indicator_input_names(model.config)
                       if n in self.specs}
        self.serve = tf.function(self._serve, input_signature=[relaxed_signature(self.specs)])

    def _serve(self, features: Mapping[str, Any]) -> dict[str, Any]:
        return self.model(checked_request(features, self.specs, self.ranges), training=False)


def save_ranker(model: RankingModel, folder: str, features: Mapping[str, np.ndarray],
                manifest: Mapping[str, Any]) -> str:
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
                              "ranking_config": model.config.model_dump()},
                             warmup_requests=warmup)
    finally:
        logger.setLevel(level)


def export_ranker(model: RankingModel, base_dir: str, features: Mapping[str, np.ndarray],
                  manifest: Mapping[str, Any], keep: int = 3,
                  log: Callable[[str], None] = print) -> str:
    """`save_ranker`, then publish it as a new version set of `base_dir` that keeps the served
    set's other servables (the pipeline publishes all of a run's servables together instead).

    Returns:
      The version folder <base_dir>/ranker/<N>.
    """
    out = publish_servables(
        lambda staging: {NAME: save_ranker(model, os.path.join(staging, NAME), features,
                                           manifest)},
        base_dir, keep=keep, run=manifest.get("run"), log=log, carry_over=True)
    log(f"  exported {out['paths'][NAME]}")
    return out["paths"][NAME]
