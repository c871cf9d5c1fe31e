"""video_id: the impressed video, [B] string -> its row of the shared video embedding [B, d]."""
from tfrec.config import RankingConfig
from tfrec.features.ranker import register_ranker_feature
from tfrec.features.ranker._base import EncodingContext, KerasTensor, RankerFeature, RankerInput
from tfrec.features.ranker._video_embedding import video_embedding


@register_ranker_feature("video_id")
class VideoId(RankerFeature):
    """The impressed video's id embedding (`video_embedding`). Its column is the impression's
    own (`tfrec.features.ranking_examples`): nothing to compute offline."""

    slot = 10

    def inputs(self, config: RankingConfig) -> tuple[RankerInput, ...]:
        return (RankerInput("video_id", "string"),)

    def encode(self, context: EncodingContext) -> list[KerasTensor]:
        lookup, embedding = video_embedding(context)
        return [embedding(lookup(context.input("video_id")))]
