"""watch_history: the user's last max_history watches before the impression, most recent first,
[B, H] string ("" padding) -> the masked mean of their rows of the shared video embedding
[B, d]."""
from tfrec.config import RankingConfig
from tfrec.features.ranker import register_ranker_feature
from tfrec.features.ranker._base import EncodingContext, KerasTensor, RankerFeature, RankerInput
from tfrec.features.ranker._video_embedding import video_embedding
from tfrec.models.layers import MaskedMean
from tfrec.tf_keras2 import tf


@register_ranker_feature("watch_history")
class WatchHistory(RankerFeature):
    """Mean embedding of the watches before the impression. The column is built with the
    examples by the one history rule of both stages (`tfrec.features.ranking_examples`), so the
    candidate generator scores the same history: nothing to compute here."""

    slot = 20

    def inputs(self, config: RankingConfig) -> tuple[RankerInput, ...]:
        return (RankerInput("watch_history", "string", (config.max_history,)),)

    def encode(self, context: EncodingContext) -> list[KerasTensor]:
        lookup, embedding = video_embedding(context)
        rows = lookup(context.input("watch_history"))
        return [MaskedMean(name="watch_history_mean")(embedding(rows), tf.not_equal(rows, 0))]
