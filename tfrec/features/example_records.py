"""Examples as sharded TFRecord files of `tf.train.Example`: the codec between columnar example
sets (`ExampleSet`) and the files that training streams and that a Beam pipeline writes.

A record spec names each column's type: {column: {"dtype": "int64" | "float32" | "string",
"ragged": bool}}. One row of the columns is one `tf.train.Example` whose feature names are the
column names (so the names the towers read); a ragged column's row is a variable-length list, a
scalar column's a list of one value. A shard folder holds GZIP-compressed files
`<split>-00000-of-000NN.tfrecord.gz` and a facts file `<split>.json` (`ShardFacts`): the spec,
the row count, the files and their bytes, and what a model takes from its whole training set
(label counts, maximum example age), so training never loads all of its examples.
"""
from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from tfrec.features.example_set import Column, ExampleSet
from tfrec.features.ragged import Ragged

DTYPES = ("int64", "float32", "string")
COMPRESSION = "GZIP"
SUFFIX = ".tfrecord.gz"
# Rows parsed per tf.io.parse_example call when materialising shards.
READ_BATCH = 8192


def _dtype_of(values: np.ndarray) -> str:
    """The spec dtype of a numpy array's values: ints and bools -> int64, floats -> float32,
    strings and objects -> string."""
    kind = values.dtype.kind
    if kind in "biu":
        return "int64"
    if kind == "f":
        return "float32"
    if kind in "OUS":
        return "string"
    raise ValueError(f"no record dtype for numpy dtype {values.dtype}")


def record_spec(columns: Mapping[str, Column]) -> dict[str, dict]:
    """The JSON-able record spec of columnar data (numpy arrays [n] or Ragged with n rows)."""
    spec = {}
    for name, col in columns.items():
        try:
            dtype = _dtype_of(col.values if isinstance(col, Ragged) else col)
        except ValueError as e:
            raise ValueError(f"column {name!r}: {e}") from None
        spec[name] = {"dtype": dtype, "ragged": isinstance(col, Ragged)}
    return spec


def check_spec(spec: Any) -> dict[str, dict]:
    """`spec` if it is a well-formed record spec; else ValueError naming the bad column."""
    if not isinstance(spec, Mapping) or not spec:
        raise ValueError(f"record spec must be a non-empty {{column: {{dtype, ragged}}}}, "
                         f"got {spec!r}")
    for name, entry in spec.items():
        if not isinstance(entry, Mapping) or set(entry) != {"dtype", "ragged"}:
            raise ValueError(f"record spec column {name!r}: needs exactly the keys 'dtype' and "
                             f"'ragged', got {entry!r}")
        if entry["dtype"] not in DTYPES:
            raise ValueError(f"record spec column {name!r}: dtype must be one of {DTYPES}, got "
                             f"{entry['dtype']!r}")
        if not isinstance(entry["ragged"], bool):
            raise ValueError(f"record spec column {name!r}: ragged must be true or false, got "
                             f"{entry['ragged']!r}")
    return dict(spec)


def _as_values(values: np.ndarray, dtype: str) -> list:
    """numpy values -> the Python values of a feature list of `dtype` (str ids as UTF-8)."""
    if dtype == "string":
        # Each distinct id is encoded once (ids repeat across histories).
        codes, distinct = pd.factorize(values, use_na_sentinel=False)
        encoded = np.array([str(v).encode() for v in distinct], dtype=object)
        return encoded[codes].tolist()
    return values.astype(np.int64 if dtype == "int64" else np.float32).tolist()


def _flat_values(col: Column, dtype: str, ragged: bool, name: str) -> tuple[list, list[int]]:
    """(flat Python values of a column, [n + 1] row offsets into them)."""
    if ragged != isinstance(col, Ragged):
        raise ValueError(f"column {name!r}: the spec says ragged={ragged} but the column is "
                         f"{'a Ragged' if isinstance(col, Ragged) else 'a flat array'}")
    if isinstance(col, Ragged):
        return _as_values(col.values, dtype), col.offsets.tolist()
    return _as_values(col, dtype), list(range(len(col) + 1))


def encode_examples(columns: Mapping[str, Column], spec: dict) -> Iterator[bytes]:
    """One serialized `tf.train.Example` per row of columnar data, features named as the
    columns, typed as `spec` (`record_spec`); every column of the spec must be present."""
    from tensorflow.core.example import example_pb2, feature_pb2
    spec = check_spec(spec)
    missing = sorted(set(spec) - set(columns))
    if missing:
        raise ValueError(f"columns {missing} of the record spec are missing from the data")
    n = len(columns[next(iter(spec))])
    kinds = {"int64": "int64_list", "float32": "float_list", "string": "bytes_list"}
    # (name, list kind, flat Python values, offsets: row i is flat[offsets[i]:offsets[i + 1]]).
    plan = [(name, kinds[s["dtype"]], *_flat_values(columns[name], s["dtype"], s["ragged"], name))
            for name, s in spec.items()]
    for i in range(n):
        example = example_pb2.Example()
        feature = example.features.feature
        for name, kind, flat, offsets in plan:
            entry: feature_pb2.Feature = feature[name]
            getattr(entry, kind).value.extend(flat[offsets[i]:offsets[i + 1]])
        # deterministic: map entries in key order, so equal rows give equal bytes in any process.
        yield example.SerializeToString(deterministic=True)


def shard_name(split: str, index: int, num_shards: int) -> str:
    """The file name of shard `index` (0-based) of `num_shards`."""
    return f"{split}-{index:05d}-of-{num_shards:05d}{SUFFIX}"


def shard_of_rows(n: int, num_shards: int) -> np.ndarray:
    """[n] int: the shard of each row (row i -> i mod num_shards: deterministic, even sizes)."""
    return np.arange(n, dtype=np.int64) % num_shards


def write_records(path: str, records: Iterator[bytes] | Sequence[bytes]) -> None:
    """GZIP TFRecord file of `records`, written atomically (a temp file, then renamed)."""
    import tensorflow as tf
    tmp = path + ".tmp"
    with tf.io.TFRecordWriter(tmp, options=COMPRESSION) as writer:
        for record in records:
            writer.write(record)
    os.replace(tmp, path)


def write_shards(columns: Mapping[str, Column] | ExampleSet, folder: str, split: str,
                 num_shards: int, spec: dict | None = None) -> list[str]:
    """Write the rows of `columns` as `num_shards` GZIP TFRecord files in `folder`.

    Args:
      columns: ExampleSet or {name: numpy array [n] | Ragged with n rows}.
      folder: created if absent.
      split: file name prefix ("train", ...).
      num_shards: >= 1; row i goes to shard i mod num_shards.
      spec: the record spec (None: `record_spec(columns)`).
    Returns:
      The file paths, in shard order.
    """
    if num_shards < 1:
        raise ValueError(f"num_shards must be >= 1, got {num_shards}")
    data = ExampleSet(columns.columns if isinstance(columns, ExampleSet) else columns)
    spec = check_spec(spec if spec is not None else record_spec(data.columns))
    os.makedirs(folder, exist_ok=True)
    shards = shard_of_rows(len(data), num_shards)
    paths = []
    for index in range(num_shards):
        path = os.path.join(folder, shard_name(split, index, num_shards))
        part = data.take(np.flatnonzero(shards == index))
        write_records(path, encode_examples(part.columns, spec))
        paths.append(path)
    return paths


def parse_spec(spec: dict) -> dict[str, Any]:
    """{column: tf.io feature spec} that parses records of `spec` (ragged -> RaggedFeature,
    scalar -> FixedLenFeature [])."""
    import tensorflow as tf
    spec = check_spec(spec)
    types = {"int64": tf.int64, "float32": tf.float32, "string": tf.string}
    return {name: tf.io.RaggedFeature(types[s["dtype"]], row_splits_dtype=tf.int64)
            if s["ragged"] else tf.io.FixedLenFeature([], types[s["dtype"]])
            for name, s in spec.items()}


def _to_numpy(values: Any, dtype: str) -> np.ndarray:
    """A parsed tensor's values as the local driver's numpy: strings as object arrays of str."""
    array = values.numpy()
    if dtype == "string":
        return np.array([v.decode() for v in array], dtype=object)
    return array.astype(np.int64 if dtype == "int64" else np.float32)


def read_example_set(paths: Sequence[str], spec: dict) -> ExampleSet:
    """The rows of TFRecord shards (in file order) as an ExampleSet typed as `spec`: string
    columns as object arrays of str, ragged columns as Ragged, numbers as int64 / float32."""
    import tensorflow as tf
    features = parse_spec(spec)
    for path in paths:
        if not os.path.exists(path):
            raise FileNotFoundError(f"example shard {path} does not exist")
    parts: dict[str, list[Column]] = {name: [] for name in features}
    dataset = tf.data.TFRecordDataset(list(paths), compression_type=COMPRESSION)
    try:
        for batch in dataset.batch(READ_BATCH):
            parsed = tf.io.parse_example(batch, features)
            for name, value in parsed.items():
                dtype = spec[name]["dtype"]
                if spec[name]["ragged"]:
                    parts[name].append(Ragged(_to_numpy(value.flat_values, dtype),
                                              value.row_lengths().numpy().astype(np.int64)))
                else:
                    parts[name].append(_to_numpy(value, dtype))
    except tf.errors.OpError as e:
        raise ValueError(f"example shards {list(paths)} do not parse with the record spec "
                         f"{spec}: {e.message}") from None
    columns: dict[str, Column] = {}
    for name, s in spec.items():
        chunks: list[Any] = parts[name]
        if s["ragged"]:
            empty = Ragged(_to_numpy(tf.constant([], dtype=features[name].dtype), s["dtype"]),
                           np.zeros(0, dtype=np.int64))
            columns[name] = Ragged.concat(chunks) if chunks else empty
        else:
            columns[name] = np.concatenate(chunks) if chunks else \
                _to_numpy(tf.constant([], dtype=features[name].dtype), s["dtype"])
    return ExampleSet(columns)


def label_counts(labels: np.ndarray) -> dict[str, int]:
    """{video id: training examples with that label}, nonzero counts only."""
    counts = pd.Series(labels).value_counts()
    return {str(k): int(v) for k, v in counts.items()}


def max_example_age(ages: np.ndarray) -> float:
    """The largest example age in seconds (1.0 when there are no examples: a nonzero scale)."""
    return float(np.max(ages)) if len(ages) else 1.0


@dataclasses.dataclass
class ShardFacts:
    """What a shard folder's `<split>.json` says about the split's shards.

    spec: the record spec; count: rows in all files; files: their names relative to the folder;
    bytes: their total size; label_counts: {video id: training examples with that label}
    (nonzero only); max_example_age_seconds: the largest example age (s).
    """

    spec: dict[str, dict]
    count: int
    files: list[str]
    bytes: int
    label_counts: dict[str, int]
    max_example_age_seconds: float

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ShardFacts:
        fields = {f.name for f in dataclasses.fields(cls)}
        if set(data) != fields:
            raise ValueError(f"shard facts need exactly the keys {sorted(fields)}, got "
                             f"{sorted(data)}")
        return cls(spec=check_spec(data["spec"]), count=int(data["count"]),
                   files=[str(f) for f in data["files"]], bytes=int(data["bytes"]),
                   label_counts={str(k): int(v) for k, v in data["label_counts"].items()},
                   max_example_age_seconds=float(data["max_example_age_seconds"]))

    def paths(self, folder: str) -> list[str]:
        """The shard files' paths under `folder`."""
        return [os.path.join(folder, name) for name in self.files]


def facts_path(folder: str, split: str) -> str:
    return os.path.join(folder, f"{split}.json")


def shard_facts(examples: ExampleSet, paths: Sequence[str], spec: dict) -> ShardFacts:
    """The facts of shards `paths` written from training `examples` (label, example_age)."""
    return ShardFacts(spec=check_spec(spec), count=len(examples),
                      files=[os.path.basename(p) for p in paths],
                      bytes=sum(os.path.getsize(p) for p in paths),
                      label_counts=label_counts(examples["label"]),
                      max_example_age_seconds=max_example_age(examples["example_age"]))


def write_facts(folder: str, split: str, facts: ShardFacts) -> str:
    """Write `<folder>/<split>.json` atomically; returns its path."""
    path = facts_path(folder, split)
    with open(path + ".tmp", "w") as f:
        json.dump(facts.to_dict(), f, indent=1)
    os.replace(path + ".tmp", path)
    return path


def read_facts(folder: str, split: str) -> ShardFacts:
    """The facts file `<folder>/<split>.json`; errors name the file (missing, bad, or a shard
    it lists that is absent)."""
    path = facts_path(folder, split)
    if not os.path.exists(path):
        raise FileNotFoundError(f"shard facts file {path} does not exist")
    try:
        with open(path) as f:
            facts = ShardFacts.from_dict(json.load(f))
    except (ValueError, TypeError, AttributeError) as e:
        raise ValueError(f"shard facts file {path}: {e}") from None
    for shard in facts.paths(folder):
        if not os.path.exists(shard):
            raise FileNotFoundError(f"{path} lists the shard {shard}, which does not exist")
    return facts


def write_split(examples: ExampleSet, folder: str, split: str, num_shards: int) -> ShardFacts:
    """Write training `examples` as shards and the facts file in `folder`; returns the facts."""
    spec = record_spec(examples.columns)
    paths = write_shards(examples, folder, split, num_shards, spec)
    facts = shard_facts(examples, paths, spec)
    write_facts(folder, split, facts)
    return facts
