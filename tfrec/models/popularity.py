"""The popularity baseline: every user gets the most-watched videos of the training window."""
import numpy as np
import numpy.typing as npt
import pandas as pd


class Popularity:
    """Scores each corpus video by its number of training watches.

    Args:
      corpus_ids: [N] video ids to score.
      train_video_ids: [W] video id of every training watch (training window only, so
        held-out targets never count).
    """

    def __init__(self, corpus_ids: npt.ArrayLike, train_video_ids: npt.ArrayLike) -> None:
        counts = pd.Series(np.asarray(train_video_ids)).value_counts()
        self.corpus_ids = np.asarray(corpus_ids)
        self.counts = counts.reindex(self.corpus_ids, fill_value=0).to_numpy(np.float64)  # [N]

    def scores(self, num_queries: int) -> np.ndarray:
        """[num_queries, N] the same popularity scores for every query."""
        return np.broadcast_to(self.counts, (num_queries, len(self.counts)))

    def top_k(self, k: int) -> np.ndarray:
        """The k most popular video ids (ties in corpus order)."""
        return self.corpus_ids[np.argsort(-self.counts, kind="stable")[:k]]
