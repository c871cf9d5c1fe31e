"""Columnar example sets: equal-length columns, each a numpy array or a `Ragged`; Parquet on disk."""
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from tfrec.features.ragged import Ragged


class ExampleSet:
    """Named columns of equal length (numpy arrays [n] or Ragged with n rows)."""

    def __init__(self, columns):
        lengths = {name: len(col) for name, col in columns.items()}
        if len(set(lengths.values())) > 1:
            raise ValueError(f"columns differ in length: {lengths}")
        self.columns = dict(columns)

    def __len__(self):
        return len(next(iter(self.columns.values()))) if self.columns else 0

    def __getitem__(self, name):
        return self.columns[name]

    def take(self, rows):
        """The rows at `rows` [k] (indices, in that order), or where a [n] bool mask is True."""
        rows = np.asarray(rows)
        if rows.dtype == bool:
            rows = np.flatnonzero(rows)
        return ExampleSet({k: v.take(rows) if isinstance(v, Ragged) else v[rows]
                           for k, v in self.columns.items()})

    @classmethod
    def concat(cls, parts):
        """Concatenate dicts (or ExampleSets) with the same column names, in order."""
        parts = [p.columns if isinstance(p, ExampleSet) else p for p in parts]
        names = parts[0].keys()
        out = {}
        for name in names:
            cols = [p[name] for p in parts]
            out[name] = Ragged.concat(cols) if isinstance(cols[0], Ragged) else np.concatenate(cols)
        return cls(out)

    def to_parquet(self, path):
        """Write atomically (temp file, then rename)."""
        arrays = {k: v.to_arrow() if isinstance(v, Ragged) else pa.array(v)
                  for k, v in self.columns.items()}
        tmp = path + ".tmp"
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        pq.write_table(pa.table(arrays), tmp)
        os.replace(tmp, path)

    @classmethod
    def from_parquet(cls, path):
        table = pq.read_table(path)
        columns = {}
        for name in table.column_names:
            col = table.column(name)
            if pa.types.is_list(col.type) or pa.types.is_large_list(col.type):
                columns[name] = Ragged.from_arrow(col)
            else:
                columns[name] = col.to_numpy(zero_copy_only=False)
        return cls(columns)
