"""The one order every history in the project follows (docs/PROTOCOL.md, P1).

Watches are ordered by timestamp; ties (many MovieLens ratings share one second) are broken by
`zlib.crc32(f"{user_id}:{video_id}")` ascending, which is neutral and reproducible. Breaking ties by
video id would not be neutral: higher MovieLens ids are newer, rarer films.
"""
import zlib
from collections.abc import Sequence

import numpy as np
import pandas as pd


def tie_break_keys(user_ids: Sequence[object] | np.ndarray,
                   video_ids: Sequence[object] | np.ndarray) -> np.ndarray:
    """[n] uint32 crc32 of "user_id:video_id" (raw ids as strings)."""
    return np.fromiter((zlib.crc32(f"{u}:{v}".encode()) for u, v in zip(user_ids, video_ids)),
                       dtype=np.uint32, count=len(user_ids))


def order_watches(watches: pd.DataFrame) -> pd.DataFrame:
    """Watches sorted by (user_id, timestamp, tie-break key), index reset.

    Args:
      watches: DataFrame with user_id, video_id, timestamp (and any other columns).
    Returns:
      A new DataFrame, each user's rows contiguous and in watch order.
    """
    keys = tie_break_keys(watches["user_id"].to_numpy(), watches["video_id"].to_numpy())
    # Integer codes in sorted-id order: the same order as sorting the strings, much faster.
    user_codes, _ = pd.factorize(watches["user_id"], sort=True)
    order = np.lexsort((keys, watches["timestamp"].to_numpy(), user_codes))
    return watches.iloc[order].reset_index(drop=True)
