"""A minimal columnar ragged array (flat values + row lengths), the storage form of histories."""
import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa


def ranges(starts: npt.ArrayLike, lengths: npt.ArrayLike, step: int = 1) -> np.ndarray:
    """Flat indices of the rows `starts[r] + step * arange(lengths[r])`, concatenated.

    Args:
      starts: [rows] int first index of each row.
      lengths: [rows] int >= 0.
      step: +1 for ascending rows, -1 for descending (most recent first).
    Returns:
      [sum(lengths)] int64.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    total = int(lengths.sum())
    row_starts = np.cumsum(lengths) - lengths
    within = np.arange(total, dtype=np.int64) - np.repeat(row_starts, lengths)
    return np.repeat(np.asarray(starts, dtype=np.int64), lengths) + step * within


@dataclasses.dataclass
class Ragged:
    """Rows of variable length: `values` [sum(lengths)], `lengths` [rows]."""

    values: np.ndarray
    lengths: np.ndarray

    def __len__(self) -> int:
        return len(self.lengths)

    @property
    def offsets(self) -> np.ndarray:
        """[rows + 1] int64 start of each row in `values`, then the total."""
        return np.concatenate([[0], np.cumsum(self.lengths, dtype=np.int64)])

    def row(self, i: int) -> np.ndarray:
        offsets = self.offsets
        return self.values[offsets[i]:offsets[i + 1]]

    def map_values(self, fn: Callable[[np.ndarray], np.ndarray]) -> "Ragged":
        return Ragged(fn(self.values), self.lengths)

    def take(self, rows: npt.ArrayLike) -> "Ragged":
        """The rows at `rows` [k], in that order."""
        rows = np.asarray(rows, dtype=np.int64)
        idx = ranges(self.offsets[:-1][rows], self.lengths[rows])
        return Ragged(self.values[idx], self.lengths[rows])

    def to_padded(self, width: int, pad: Any) -> np.ndarray:
        """[rows, width] array, each row's first `width` values then `pad`."""
        out = np.full((len(self.lengths), width), pad, dtype=self.values.dtype)
        kept = np.minimum(self.lengths, width)
        rows = np.repeat(np.arange(len(kept)), kept)
        cols = ranges(np.zeros(len(kept)), kept)
        src = ranges(self.offsets[:-1], kept)
        out[rows, cols] = self.values[src]
        return out

    def to_arrow(self) -> pa.LargeListArray:
        # int64 offsets: 100M examples x 50 history ids overflow int32.
        return pa.LargeListArray.from_arrays(pa.array(self.offsets.astype(np.int64)),
                                             pa.array(self.values))

    @classmethod
    def from_arrow(cls, array: pa.Array | pa.ChunkedArray) -> "Ragged":
        array = array.combine_chunks() if isinstance(array, pa.ChunkedArray) else array
        offsets = array.offsets.to_numpy()
        values = array.values.to_numpy(zero_copy_only=False)[offsets[0]:offsets[-1]]
        return cls(values, np.diff(offsets).astype(np.int64))

    @classmethod
    def concat(cls, parts: Sequence["Ragged"], dtype: npt.DTypeLike | None = None) -> "Ragged":
        if not parts:
            return cls(np.zeros(0, dtype=dtype or np.int64), np.zeros(0, dtype=np.int64))
        return cls(np.concatenate([p.values for p in parts]),
                   np.concatenate([p.lengths for p in parts]))
