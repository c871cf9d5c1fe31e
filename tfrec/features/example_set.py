"""Columnar example sets: equal-length columns, each a numpy array or a `Ragged`; Parquet on
disk."""
import os
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.parquet as pq

from tfrec.features.ragged import Ragged

# One column: a numpy array [n], or a Ragged with n rows.
Column = np.ndarray | Ragged


class ExampleSet:
    """Named columns of equal length (numpy arrays [n] or Ragged with n rows)."""

    def __init__(self, columns: Mapping[str, Column]) -> None:
        lengths = {name: len(col) for name, col in columns.items()}
        if len(set(lengths.values())) > 1:
            raise ValueError(f"columns differ in length: {lengths}")
        self.columns: dict[str, Column] = dict(columns)

    def __len__(self) -> int:
        return len(next(iter(self.columns.values()))) if self.columns else 0

    def __getitem__(self, name: str) -> Any:
        # Any: the column's kind (array or Ragged) depends on its name; callers know which.
        return self.columns[name]

    def take(self, rows: npt.ArrayLike) -> "ExampleSet":
        """The rows at `rows` [k] (indices, in that order), or where a [n] bool mask is True."""
        index = np.asarray(rows)
        if index.dtype == bool:
            index = np.flatnonzero(index)
        return ExampleSet({k: v.take(index) if isinstance(v, Ragged) else v[index]
                           for k, v in self.columns.items()})

    @classmethod
    def concat(cls, parts: Iterable["ExampleSet | Mapping[str, Column]"]) -> "ExampleSet":
        """Concatenate dicts (or ExampleSets) with the same column names, in order."""
        tables = [p.columns if isinstance(p, ExampleSet) else p for p in parts]
        names = tables[0].keys()
        out: dict[str, Column] = {}
        for name in names:
            cols: list[Any] = [t[name] for t in tables]
            out[name] = Ragged.concat(cols) if isinstance(cols[0], Ragged) \
                else np.concatenate(cols)
        return cls(out)

    def to_parquet(self, path: str) -> None:
        """Write atomically (temp file, then rename)."""
        arrays = {k: v.to_arrow() if isinstance(v, Ragged) else pa.array(v)
                  for k, v in self.columns.items()}
        tmp = path + ".tmp"
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        pq.write_table(pa.table(arrays), tmp)
        os.replace(tmp, path)

    @classmethod
    def from_parquet(cls, path: str) -> "ExampleSet":
        table = pq.read_table(path)
        columns: dict[str, Column] = {}
        for name in table.column_names:
            col = table.column(name)
            if pa.types.is_list(col.type) or pa.types.is_large_list(col.type):
                columns[name] = Ragged.from_arrow(col)
            else:
                columns[name] = col.to_numpy(zero_copy_only=False)
        return cls(columns)
