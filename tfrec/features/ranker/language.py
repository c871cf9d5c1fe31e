"""language: the user's and the video's language, [B] string each ("" unknown) -> one shared
language embedding of each [B, d] twice, and their 0/1 match [B, 1] (0 when unknown)."""
from typing import Any

import numpy as np

from tfrec.config import RankingConfig
from tfrec.features.example_set import ExampleSet
from tfrec.features.ranker import register_ranker_feature
from tfrec.features.ranker._base import EncodingContext, KerasTensor, RankerFeature, RankerInput
from tfrec.features.ranker._pages import RankingPages
from tfrec.tf_keras2 import tf

SIDES = ("user_language", "video_language")


@register_ranker_feature("language")
class Language(RankerFeature):
    """User and video language (users / videos table `language`; "" when a table has none).
    Artifact `languages`: the sorted values seen in training (the embedding's vocabulary)."""

    slot = 30
    page_columns = SIDES

    def inputs(self, config: RankingConfig) -> tuple[RankerInput, ...]:
        return tuple(RankerInput(side, "string") for side in SIDES)

    def compute_page_columns(self, pages: RankingPages) -> dict[str, np.ndarray]:
        return {"user_language": pages.user_column("language")[pages.user_codes],
                "video_language": pages.video_column("language", "").astype(str).astype(
                    object)[pages.video_rows]}

    def fit(self, config: RankingConfig, train_examples: ExampleSet) -> dict[str, Any]:
        languages = set(np.asarray(train_examples["user_language"]).astype(str)) | \
            set(np.asarray(train_examples["video_language"]).astype(str))
        return {"languages": sorted(languages)}

    def encode(self, context: EncodingContext) -> list[KerasTensor]:
        lookup = tf.keras.layers.StringLookup(
            vocabulary=sorted(set(context.artifacts["languages"]) - {""}) or ["?"],
            mask_token="", num_oov_indices=1, name="language_lookup")
        embedding = tf.keras.layers.Embedding(lookup.vocabulary_size(),
                                              context.config.language_dim,
                                              embeddings_regularizer=context.regularizer,
                                              name="language_embedding")
        parts = [embedding(lookup(context.input(side))) for side in SIDES]
        user, video = (context.input(side) for side in SIDES)
        same = tf.logical_and(tf.equal(user, video), tf.not_equal(user, ""))
        return [*parts, tf.cast(same, tf.float32)[:, None]]
