"""The video id embedding table that video_id and watch_history share (as the paper does): rows 0
padding "", 1 unknown, 2.. the corpus (the candidate generator's vocabulary, artifact
`video_ids`)."""
from typing import Any

from tfrec.features.ranker._base import EncodingContext
from tfrec.tf_keras2 import tf


def video_embedding(context: EncodingContext) -> tuple[Any, Any]:
    """(StringLookup "video_lookup", Embedding "video_embedding"), made once per scorer."""
    def make() -> tuple[Any, Any]:
        lookup = tf.keras.layers.StringLookup(
            vocabulary=[str(v) for v in context.artifacts["video_ids"]], mask_token="",
            num_oov_indices=1, name="video_lookup")
        embedding = tf.keras.layers.Embedding(lookup.vocabulary_size(),
                                              context.config.embedding_dim,
                                              embeddings_regularizer=context.regularizer,
                                              name="video_embedding")
        return lookup, embedding
    return context.shared("video_embedding", make)
