"""Impressions for sources without impression logs (MovieLens), built from what the candidate
generator would have retrieved. The generator's score u . v of an impression (the ranker feature
cg_score) is `tfrec.features.ranker.cg_score.candidate_generation_scores`, re-exported here.

Retrieved impressions (the honest stand-in for MovieLens, docs/ARCHITECTURE.md "Examples"): for each
next-watch example (a user, a time t, the true next watch), the page shown at t is the true next
watch plus `negatives_per_page` videos drawn uniformly from the candidate generator's top `top_n`
at t other than it (serving-time query: example_age 0; the history excluded), in a random order;
with positive="if_retrieved" the true next watch is on the page only when the generator ranks it in
its top_n. The page keeps the example's cut (`watches_before`), so its ranking features see the
example's own history (`tfrec.features.history`). The true next watch is the click, with watch_time
= that watch's watch time (on MovieLens the rating: docs/PROTOCOL.md, P1); others: not clicked.
Caveats: the negatives are exactly the videos the generator liked, so they are hard negatives; the
click label is "watched next", not a click on a real page; and for training examples the generator
has been fitted to the very watches that are the positives, so their scores (and `cg_score`) are
optimistic there. With positive="always", negatives are picked for their high score and the
positive is not, so the generator's score separates them by construction (measured: AUC 0.30 on
MovieLens test pages, `benchmarks/ranking_movielens.py`); "if_retrieved" picks both the same way.
"""
from typing import Any

import numpy as np
import pandas as pd

from tfrec.config import UserTowerConfig

from tfrec.features.example_set import ExampleSet
# cg_score's computation lives with its ranker feature; re-exported here, where callers import it.
from tfrec.features.ranker.cg_score import CHUNK, candidate_generation_scores, query_vectors

__all__ = ["candidate_generation_scores", "retrieved_impressions"]


def retrieved_impressions(cg_model: Any, examples: ExampleSet, tower: UserTowerConfig,
                          watches: pd.DataFrame, top_n: int = 50, negatives_per_page: int = 9,
                          seed: int = 0, positive: str = "always") -> pd.DataFrame:
    """An impressions table (schema columns) built from next-watch examples (module docstring).

    Args:
      cg_model: trained CandidateGenerationModel.
      examples: candidate-generation ExampleSet (train, validation or test): label, user_id,
        timestamp, watch_history, (exclusions), demographics.
      tower: the generator's UserTowerConfig.
      watches: the watches table (for each positive's watch_time).
      top_n: the retrieved page the negatives come from.
      negatives_per_page: negatives per page (at most top_n).
      positive: "always": every page holds the true next watch; "if_retrieved": only when it is
        in the generator's top_n (else the page is the negatives alone), so the positive is
        chosen like the negatives and the generator's score does not separate them by
        construction (use this when cg_score is a ranking feature).
    Returns:
      DataFrame user_id, video_id, timestamp, position, clicked, watch_time, watches_before (the
      example's cut, so `build_ranking_examples` gives the page the example's own history, ties
      in its second included: `tfrec.features.history`): (1 + negatives_per_page) rows per
      example (negatives_per_page when the positive is left out).
    """
    if positive not in ("always", "if_retrieved"):
        raise ValueError(f"positive must be 'always' or 'if_retrieved', got {positive!r}")
    if "watches_before" not in examples.columns:
        raise ValueError("examples lack watches_before (the label's position): build them with "
                         "tfrec.features.local_driver.build_candidate_examples")
    if not 0 < negatives_per_page <= top_n:
        raise ValueError(f"need 0 < negatives_per_page <= top_n, got {negatives_per_page}, "
                         f"{top_n}")
    rng = np.random.default_rng(seed)
    ids, table = cg_model.candidate_table()
    index = pd.Index(ids)
    excluded = examples["exclusions"] if "exclusions" in examples.columns \
        else examples["watch_history"]
    labels = np.asarray(examples["label"]).astype(str)
    negatives = np.zeros((len(examples), negatives_per_page), np.int64)
    retrieved = np.zeros(len(examples), bool)
    for start in range(0, len(examples), max(1, CHUNK // 8)):
        rows = np.arange(start, min(start + max(1, CHUNK // 8), len(examples)))
        scores = query_vectors(cg_model, examples.take(rows), tower) @ table.T
        part = excluded.take(rows)
        cols = index.get_indexer(part.values)
        r = np.repeat(np.arange(len(rows)), part.lengths)
        scores[r[cols >= 0], cols[cols >= 0]] = -np.inf
        label_cols = index.get_indexer(labels[rows])
        known = np.arange(len(rows))[label_cols >= 0]
        label_score = np.full(len(rows), -np.inf)
        label_score[known] = scores[known, label_cols[label_cols >= 0]]
        # Retrieved: fewer than top_n eligible videos score higher than the positive.
        retrieved[rows] = np.sum(scores > label_score[:, None], axis=1) < top_n
        scores[known, label_cols[label_cols >= 0]] = -np.inf
        n = min(top_n, scores.shape[1])
        top = np.argpartition(-scores, n - 1, axis=1)[:, :n]
        pick = np.argsort(rng.random(top.shape), axis=1)[:, :negatives_per_page]
        negatives[rows] = np.take_along_axis(top, pick, axis=1)
    page = 1 + negatives_per_page
    n = len(examples)
    video = np.concatenate([labels[:, None], np.asarray(ids, dtype=object)[negatives]], axis=1)
    wt = watches.drop_duplicates(["user_id", "video_id", "timestamp"]).set_index(
        ["user_id", "video_id", "timestamp"])["watch_time"]
    key = pd.MultiIndex.from_arrays([np.asarray(examples["user_id"]).astype(str), labels,
                                     np.asarray(examples["timestamp"], np.int64)])
    positive_time = wt.reindex(key).to_numpy(np.float64)
    if np.isnan(positive_time).any():
        raise ValueError(f"{int(np.isnan(positive_time).sum())} example label(s) are not in the "
                         "watches table (user, video, timestamp)")
    clicked = np.zeros((n, page), np.int64)
    clicked[:, 0] = 1
    keep = np.ones((n, page), bool)
    if positive == "if_retrieved":
        keep[:, 0] = retrieved
    kept_rows = keep.reshape(-1)
    return pd.DataFrame({
        "user_id": np.repeat(np.asarray(examples["user_id"]).astype(str), page).astype(object),
        "video_id": video.reshape(-1).astype(str).astype(object),
        "timestamp": np.repeat(np.asarray(examples["timestamp"], np.int64), page),
        "position": np.argsort(rng.random((n, page)), axis=1).reshape(-1).astype(np.int64),
        "clicked": clicked.reshape(-1),
        "watch_time": np.where(clicked, positive_time[:, None], 0.0).reshape(-1),
        "watches_before": np.repeat(np.asarray(examples["watches_before"], np.int64), page),
    }).loc[kept_rows].reset_index(drop=True)
