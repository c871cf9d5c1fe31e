"""`tfrec recommend`: a user's top-k from the exported SavedModels alone (no model code).

The models are those of the version set models.config serves (`tfrec versions`), so a rollback
there is a rollback here. The request is built the way a front end would, each input by its tower
feature (`TowerFeature.request`, `tfrec.features.tower`): the user's watches so far (most recent
first, at most the exported history width), demographics, example_age 0, ... The events come from
the run that exported the model (its manifest names the folder), or from --events.
"""
from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from tfrec.data.schema import read_events, read_parquet_file
from tfrec.features.ordering import order_watches
from tfrec.features.tower import (RequestSpec, ServingUser, registered_tower_features,
                                  watched_inputs)
from tfrec.keras_check import require_keras2
from tfrec.serving.version_sets import served_path


def user_request(events_dir: str, user_id: str, signature_inputs: Mapping[str, RequestSpec],
                 max_history: int | None = None) -> tuple[dict[str, np.ndarray], list[str]]:
    """{input name: [1, ...] numpy} for one user, and the user's recent watches (newest first).

    Each input is filled by the tower feature that declares it. A watched-id input
    (watch_history) declared of any width gets the user's whole watch list, newest first (at
    most `max_history`, the export's limit): the servable excludes all of it.
    Raises ValueError naming the inputs no registered tower feature fills."""
    watches = read_parquet_file(os.path.join(events_dir, "watches.parquet"))
    users = read_parquet_file(os.path.join(events_dir, "users.parquet")).set_index("user_id")
    if user_id not in users.index:
        raise KeyError(f"user {user_id!r} is not in {events_dir}/users.parquet")
    mine = order_watches(watches[watches["user_id"] == user_id]).reset_index(drop=True)
    user = ServingUser(user_id, mine, users.loc[user_id], max_history)
    filled: dict[str, np.ndarray] = {}
    for feature in registered_tower_features():
        remaining = {n: s for n, s in signature_inputs.items() if n not in filled}
        filled.update(feature.request(remaining, user))
    unfilled = [n for n in signature_inputs if n not in filled]
    if unfilled:
        raise ValueError(f"no tower feature fills the request input(s) {unfilled} (the "
                         f"export's manifest declares them; is a feature module missing from "
                         "tfrec/features/tower/?)")
    return ({n: filled[n] for n in signature_inputs},
            [str(v) for v in mine["video_id"].to_numpy()[::-1]])


def check_k(k: object) -> None:
    """k must be a whole number >= 1 (a negative k would slice from the end of the list)."""
    if k is not None and (isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1):
        raise ValueError(f"k must be an integer >= 1, got {k!r}")


def k_note(k: int, manifest: Mapping[str, Any], shown: int) -> str | None:
    """The one-line note when k is above what the export returns (its manifest's "k"), else None.

    The retrieval export answers a fixed k; asking for more shows what there is, said aloud.
    """
    export_k = manifest.get("k")
    if export_k is None or k <= export_k:
        return None
    return f"-k {k} is above the export's k={export_k}; showing {shown}"


def recommend(saved_models: str, user_id: object, k: int | None = 10,
              model: str = "retrieval_brute_force", events_dir: str | None = None
              ) -> tuple[list[str], list[tuple[str, float]], dict[str, Any]]:
    """Returns (recent watches, [(video_id, score)] (at most k; all the export returns when k is
    None), manifest) for a user, from the SavedModel only."""
    check_k(k)
    tf = require_keras2()
    path = served_path(saved_models, model)
    with open(os.path.join(path, "manifest.json")) as f:
        manifest = json.load(f)
    if model == "retrieval_scann":
        import scann  # noqa: F401  (registers the ScaNN ops the SavedModel needs)
    request, recent = user_request(events_dir or manifest["events_dir"], str(user_id),
                                   manifest["inputs"], manifest.get("max_request_history"))
    # Everything the user has watched is excluded: what the watched-id inputs cannot carry goes
    # to the exclude_watched signature's extra ids.
    carried = max((request[n].shape[1] for n in watched_inputs(request)), default=0)
    beyond = recent[carried:]
    signature = "serving_default"
    if beyond:
        request["exclude_ids"] = np.array([beyond], dtype=object)
        signature = "exclude_watched"
    serve = tf.saved_model.load(path).signatures[signature]
    out = serve(**{name: tf.constant(value) for name, value in request.items()})
    ids = [v.decode() for v in out["video_ids"].numpy()[0]]
    scores = out["scores"].numpy()[0].tolist()
    recs = [(v, s) for v, s in zip(ids, scores) if np.isfinite(s)][:k]
    return recent, recs, manifest


def rerank(saved_models: str, events_dir: str, user_id: object,
           candidates: Sequence[tuple[str, float]], k: int = 10) -> list[tuple[str, float]]:
    """Re-rank retrieved (video_id, retrieval score) pairs by the exported ranker.

    The ranker's features are built for the candidates as impressions of one page shown now (one
    second after the last event), from the same events the candidate generator used; the
    retrieval score is the `cg_score` input when the ranker takes one. Returns [(video_id,
    expected watch time)] best first (exp(logit) (1 - P) when the ranker has a click head).
    """
    from tfrec.features.ranking_examples import build_ranking_examples
    from tfrec.models.ranking_training import ranking_features
    check_k(k)
    tf = require_keras2()
    path = served_path(saved_models, "ranker")
    with open(os.path.join(path, "manifest.json")) as f:
        manifest = json.load(f)
    events = read_events(events_dir)
    now = int(max(events.watches["timestamp"].max(), events.impressions["timestamp"].max()
                  if len(events.impressions) else 0)) + 1
    ids = [v for v, _ in candidates]
    page = pd.DataFrame({"user_id": str(user_id), "video_id": ids, "timestamp": now,
                         "position": np.arange(1, len(ids) + 1), "clicked": 0,
                         "watch_time": 0.0, "cg_score": [s for _, s in candidates]})
    history = manifest["inputs"]["watch_history"]["shape"][1]
    examples = build_ranking_examples(events, page, max_history=history)
    features = ranking_features(examples, list(manifest["inputs"]), history)
    serve = tf.saved_model.load(path).signatures["serving_default"]
    out = serve(**{name: tf.constant(features[name]) for name in manifest["inputs"]})
    key = "expected_watch_time_corrected" if "expected_watch_time_corrected" in out else \
        "expected_watch_time"
    scores = out[key].numpy().reshape(-1)
    order = np.argsort(-scores, kind="stable")[:k]
    return [(str(examples["video_id"][i]), float(scores[i])) for i in order]


def titles(events_dir: str) -> dict[str, str]:
    videos = read_parquet_file(os.path.join(events_dir, "videos.parquet"))
    if "title" not in videos.columns:
        return {}
    return dict(zip(videos["video_id"], videos["title"]))


def format_recommendations(user_id: object, recent: Sequence[str],
                           recs: Sequence[tuple[str, float]], names: Mapping[str, str],
                           shown_history: int = 5) -> str:
    name = lambda v: f"{names.get(v, '')} [{v}]".strip()  # noqa: E731
    lines = [f"user {user_id}: {len(recent)} watches; most recent:"]
    lines += [f"  {name(v)}" for v in recent[:shown_history]]
    lines.append(f"top {len(recs)}:")
    lines += [f"  {i + 1:>3}. {score:8.3f}  {name(v)}" for i, (v, score) in enumerate(recs)]
    return "\n".join(lines)
