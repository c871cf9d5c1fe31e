"""cg_score: what the candidate generator thinks of the impression, its score u . v of the user
(at the impression, as at serving: example_age 0) against the impressed video, [B] float32 -> the
CDF normalisation x~, x~^2, sqrt(x~) (a `cdf` input).

The column needs the trained generator, not only the event tables: `candidate_generation_scores`
computes it (the pipeline scores the ranking pages with it, cross-fitted under P1). For training
pages the generator has been fitted to the very watches that are the positives, so the score is
optimistic there (`tfrec.features.retrieved_impressions`, `tfrec.models.cross_fitting`).
"""
from typing import Any

import numpy as np
import pandas as pd

from tfrec.config import RankingConfig, UserTowerConfig
from tfrec.features.dataset import padded_features
from tfrec.features.example_set import ExampleSet
from tfrec.features.ragged import Ragged
from tfrec.features.ranker import register_ranker_feature
from tfrec.features.ranker._base import RankerFeature, RankerInput

CHUNK = 65536  # examples scored per call of the generator's tower


def tower_features(examples: ExampleSet, tower: UserTowerConfig) -> dict[str, np.ndarray]:
    """The candidate generator's numpy inputs for each example, as at serving (example_age 0)."""
    keep = {n: examples[n] for n in examples.columns
            if n in ("watch_history", "search_tokens") or not isinstance(examples[n], Ragged)}
    features = padded_features(ExampleSet(keep), tower.max_history, tower.max_search_tokens)
    features["example_age"] = np.zeros(len(examples), np.float32)
    return features


def query_vectors(cg_model: Any, examples: ExampleSet, tower: UserTowerConfig) -> np.ndarray:
    """[n, d] the generator's user vectors u of the examples (`tower_features`)."""
    features = tower_features(examples, tower)
    names = list(cg_model.user_tower.input)
    missing = [n for n in names if n not in features]
    if missing:
        raise ValueError(f"examples lack the candidate generator's input(s) {missing}")
    return cg_model.query_vectors({n: features[n] for n in names})


def candidate_generation_scores(cg_model: Any, examples: ExampleSet,
                                tower: UserTowerConfig) -> np.ndarray:
    """[n] float32 u . v of each impression: the user (at the impression) against its video.

    Args:
      cg_model: trained CandidateGenerationModel.
      examples: ranking ExampleSet (video_id, watch_history, demographics, ...).
      tower: the generator's UserTowerConfig.
    Returns:
      [n] scores; 0 for a video outside the generator's corpus.
    """
    ids, table = cg_model.candidate_table()
    rows = pd.Index(ids).get_indexer(np.asarray(examples["video_id"]).astype(str))
    out = np.zeros(len(examples), np.float32)
    for start in range(0, len(examples), CHUNK):
        part = examples.take(np.arange(start, min(start + CHUNK, len(examples))))
        u = query_vectors(cg_model, part, tower)
        r = rows[start:start + len(part)]
        out[start:start + len(part)] = np.where(
            r >= 0, np.sum(u * table[np.maximum(r, 0)], axis=1), 0.0)
    return out


@register_ranker_feature("cg_score")
class CgScore(RankerFeature):
    """The generator's score of the impression (module docstring); its column comes from
    `candidate_generation_scores`, not from the event tables."""

    slot = 50
    needs_candidate_generator = True
    column_hint = "cg_score comes from candidate_generation_scores"

    def inputs(self, config: RankingConfig) -> tuple[RankerInput, ...]:
        return (RankerInput("cg_score", "float32", encoding="cdf"),)
