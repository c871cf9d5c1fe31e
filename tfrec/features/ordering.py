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
    return watches.iloc[watch_order(watches["user_id"].to_numpy(), watches["video_id"].to_numpy(),
                                    watches["timestamp"].to_numpy())].reset_index(drop=True)


def watch_order(user_ids: np.ndarray, video_ids: np.ndarray, timestamps: np.ndarray
                ) -> np.ndarray:
    """[n] int64 permutation putting watches in (user_id, timestamp, tie-break key) order.

    Args:
      user_ids, video_ids: [n] raw ids; timestamps: [n] int64 seconds. One user's watches alone
        (the Beam driver) get the same order as inside the whole table.
    """
    keys = tie_break_keys(user_ids, video_ids)
    # Integer codes in sorted-id order: the same order as sorting the strings, much faster.
    user_codes, _ = pd.factorize(user_ids, sort=True)
    return np.lexsort((keys, timestamps, user_codes))
