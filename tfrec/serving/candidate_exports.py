"""Export a trained candidate generator as the three retrieval servables.

  user_tower             raw features -> user_vector [B, d]
  retrieval_brute_force  raw features -> video_ids [B, k] (string), scores [B, k]; stock TF ops
  retrieval_scann        same signature through a tuned ScaNN index; needs `import scann`
"""
import os
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from tfrec.models.candidate_generation import CandidateGenerationModel
from tfrec.tf_keras2 import tf
from tfrec.serving.export import publish_servables, save_servable
from tfrec.serving.request_checks import relaxed_signature
from tfrec.serving.retrieval import (MAX_REQUEST_HISTORY, BruteForceRetrieval, ScannRetrieval,
                                     checked_user_request, query_vectors, request_signature)
from tfrec.evaluation.exact_scoring import exact_top_k
from tfrec.serving.scann_index import recall_against_exact, search, tune_scann

NAMES = ("user_tower", "retrieval_brute_force", "retrieval_scann")


class UserTowerServable(tf.Module):
    """Raw user features -> {"user_vector": u [B, d]}; the request checked first (bad input:
    INVALID_ARGUMENT naming it; example_age clamped to the training range)."""

    def __init__(self, user_tower: tf.keras.Model, name: str | None = None) -> None:
        super().__init__(name=name)
        self.user_tower = user_tower
        self.serve = tf.function(self._serve, input_signature=[
            relaxed_signature(request_signature(user_tower))])

    def _serve(self, features: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        features = checked_user_request(self.user_tower, features)
        return {"user_vector": query_vectors(self.user_tower, features, with_bias=False)}


def _qps(fn: Callable[[dict[str, np.ndarray]], Any], batches: Sequence[dict[str, np.ndarray]]
         ) -> float:
    fn(batches[0])  # warm-up (traces the function)
    start = time.perf_counter()
    count = 0
    for batch in batches:
        fn(batch)
        count += len(next(iter(batch.values())))
    return count / (time.perf_counter() - start)


def save_candidate_generation(model: CandidateGenerationModel, out_dir: str,
                              features: Mapping[str, np.ndarray],
                              held_out_features: Mapping[str, np.ndarray],
                              manifest: Mapping[str, Any], k: int = 100,
                              target_recall: float = 0.95,
                              log: Callable[[str], object] = print) -> dict[str, Any]:
    """Tune ScaNN on the user vectors of `features`, measure it on `held_out_features`, save
    the three servables (not yet a version: `tfrec.serving.version_sets.publish` makes them
    one).

    Args:
      model: a trained CandidateGenerationModel.
      out_dir: parent folder of the servable folders <out_dir>/<name>.
      features: numpy feature dict of real queries (validation), for tuning and warmup.
      held_out_features: feature dict of other real queries (test), which ScaNN is not tuned
        on: its recall against exact search and both searchers' speed are measured on them.
      manifest: run facts for every manifest.json (run name, config, metrics...).
    Returns:
      {"paths": {name: servable folder}, "ann": figures measured against exact search, with
      `tuning_queries` (tuned on) and `queries` (held out, measured on)}.
    """
    tower = model.user_tower
    with_bias = model.video_bias is not None
    video_ids, table = model.candidate_table()
    inputs = {name: features[name] for name in tower.input}
    tuning_queries = model.query_vectors(features)
    settings, tuning, searcher = tune_scann(table, tuning_queries, k=k,
                                           target_recall=target_recall, log=log)
    queries = model.query_vectors(held_out_features)
    exact10, approx10 = exact_top_k(queries, table, 10), search(searcher, queries, 10, settings)
    exact_k, approx_k = exact_top_k(queries, table, k), search(searcher, queries, k, settings)

    servables: dict[str, tf.Module] = {
        "user_tower": UserTowerServable(tower),
        "retrieval_brute_force": BruteForceRetrieval(tower, video_ids, table, k, with_bias),
        "retrieval_scann": ScannRetrieval(tower, video_ids, searcher.serialize_to_module(), k,
                                          with_bias, search_kwargs=settings.search_kwargs()),
    }
    batches = [{n: np.asarray(held_out_features[n])[i:i + 256] for n in tower.input}
               for i in range(0, len(queries), 256)]
    ann = {"k": k, "corpus": int(len(video_ids)), "queries": int(len(queries)),
           "tuning_queries": int(len(tuning_queries)), "measured_on": "test (not tuned on)",
           "scann_settings": tuning["settings"],
           "recall@10_vs_exact": recall_against_exact(approx10, exact10),
           f"recall@{k}_vs_exact": recall_against_exact(approx_k, exact_k),
           "scann_build_seconds": tuning["build_seconds"],
           "brute_force_qps": _qps(servables["retrieval_brute_force"].serve, batches),
           "scann_qps": _qps(servables["retrieval_scann"].serve, batches)}
    warmup = [{n: v[:2] for n, v in inputs.items()}]
    signature = {n: {"dtype": s.dtype.name, "shape": s.shape.as_list()}
                 for n, s in request_signature(tower).items()}
    history = {"max_request_history": MAX_REQUEST_HISTORY,
               "tower_history": int(tower.input["watch_history"].shape[1])} \
        if "watch_history" in tower.input else {}
    paths: dict[str, str] = {}
    for name, module in servables.items():
        paths[name] = save_servable(
            module, os.path.join(out_dir, name), name,
            {**manifest, "inputs": signature, **history, "k": k,
             "ann": ann if name == "retrieval_scann" else None},
            warmup_requests=warmup, scann=name == "retrieval_scann")
    return {"paths": paths, "ann": ann}


def export_candidate_generation(model: CandidateGenerationModel, base_dir: str,
                                features: Mapping[str, np.ndarray],
                                held_out_features: Mapping[str, np.ndarray],
                                manifest: Mapping[str, Any], k: int = 100,
                                target_recall: float = 0.95, keep: int = 3,
                                log: Callable[[str], object] = print) -> dict[str, Any]:
    """`save_candidate_generation`, then publish the three servables as a new version set of the
    saved_models folder `base_dir` that keeps the served set's other servables (a ranker), and
    point its models.config at it. The pipeline publishes all of a run's servables together.

    Returns:
      {"paths": {name: version folder}, "version": N, "ann": ...}.
    """
    saved: dict[str, Any] = {}

    def save_all(staging: str) -> dict[str, str]:
        saved.update(save_candidate_generation(model, staging, features, held_out_features,
                                               manifest, k, target_recall, log))
        return saved["paths"]

    out = publish_servables(save_all, base_dir, keep=keep, run=manifest.get("run"), log=log,
                            carry_over=True)
    for path in out["paths"].values():
        log(f"  exported {path}")
    return {"paths": out["paths"], "version": out["version"], "ann": saved["ann"]}
