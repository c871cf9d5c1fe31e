"""Training batches streamed from TFRecord example shards (`tfrec.features.example_records`).

The streaming twin of `tfrec.features.dataset.EpochBatches`: the same interface (`steps`,
`epoch(e)`) and the same feature dict per batch (the rules of `feature_rules`), but memory bounded
by the shuffle buffer, not the number of examples. An epoch's order is a function of (seed, epoch)
only, so a resumed run sees the batches an uninterrupted one would: the file order is a
permutation drawn from numpy's Generator seeded by [seed, epoch], files are interleaved
deterministically, and the shuffle buffer's seed is drawn from the same Generator.
"""
from __future__ import annotations

import typing
from collections.abc import Sequence

import numpy as np

from tfrec.features.dataset import FeatureRule, feature_rules
from tfrec.features.example_records import COMPRESSION, ShardFacts, check_spec, parse_spec
from tfrec.keras_check import require_keras2

# Files read at once by the interleave (each holds a GZIP stream's buffer).
CYCLE_LENGTH = 4


def spec_rules(spec: dict, max_history: int, max_search_tokens: int,
               **widths: int) -> list[FeatureRule]:
    """`feature_rules` of the columns of a record spec."""
    columns = {name: (s["ragged"], not s["ragged"] and s["dtype"] != "string")
               for name, s in check_spec(spec).items()}
    return feature_rules(columns, max_history, max_search_tokens, **widths)


def parse_batch(records: typing.Any, spec: dict, rules: Sequence[FeatureRule]) -> dict:
    """Feature dict (as `padded_features` gives) of a [B] string tensor of serialized examples.

    Only the columns the rules read are parsed.
    """
    tf = require_keras2()
    wanted = {rule.column for rule in rules}
    parsing = {name: feature for name, feature in parse_spec(spec).items() if name in wanted}
    parsed = tf.io.parse_example(records, parsing)
    features = {}
    for rule in rules:
        value = parsed[rule.column]
        string = spec[rule.column]["dtype"] == "string"
        if rule.kind == "padded":
            if not string:  # padded_features pads every ragged column as strings
                value = tf.ragged.map_flat_values(tf.strings.as_string, value)
            padded = value.to_tensor(default_value="", shape=[None, rule.width])
            features[rule.feature] = padded
            features[f"{rule.feature}_mask"] = tf.not_equal(padded, "")
        elif rule.kind == "float32":
            features[rule.feature] = tf.strings.to_number(value, tf.float32) if string \
                else tf.cast(value, tf.float32)
        else:
            features[rule.feature] = value if string else tf.strings.as_string(value)
    return features


class ShardBatches:
    """Training batches streamed from example shards, in an order fixed by (seed, epoch).

    Args:
      paths: the shard files (GZIP TFRecord of `tf.train.Example`).
      spec: their record spec; count: their number of rows (the facts file's).
      batch_size: examples per batch; the last partial batch is dropped (fixed loss scale).
      max_history, max_search_tokens, **widths: input widths, as in `padded_features`.
      seed: int.
      shuffle_buffer: examples held by the shuffle buffer (memory: about this many records).
    """

    def __init__(self, paths: Sequence[str], spec: dict, count: int, batch_size: int,
                 max_history: int = 50, max_search_tokens: int = 64, seed: int = 0,
                 shuffle_buffer: int = 65536, **widths: int) -> None:
        if not paths:
            raise ValueError("no example shards to stream")
        self.paths = list(paths)
        self.spec = check_spec(spec)
        self.size = int(count)
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.shuffle_buffer = int(shuffle_buffer)
        self.steps = self.size // self.batch_size
        self.rules = spec_rules(self.spec, max_history, max_search_tokens, **widths)

    @classmethod
    def from_facts(cls, facts: ShardFacts, folder: str, batch_size: int, **kwargs: typing.Any
                   ) -> ShardBatches:
        """The batches of the shards a facts file describes (`kwargs` as the constructor's)."""
        return cls(facts.paths(folder), facts.spec, facts.count, batch_size, **kwargs)

    def epoch(self, epoch: int) -> typing.Any:
        """tf.data.Dataset of the `steps` feature-dict batches of epoch `epoch` (1-based)."""
        tf = require_keras2()
        rng = np.random.default_rng([self.seed, epoch])
        files = [self.paths[i] for i in rng.permutation(len(self.paths))]
        shuffle_seed = int(rng.integers(2 ** 31 - 1))
        spec, rules = self.spec, self.rules
        records = tf.data.Dataset.from_tensor_slices(files).interleave(
            lambda path: tf.data.TFRecordDataset(path, compression_type=COMPRESSION),
            cycle_length=min(CYCLE_LENGTH, len(files)), block_length=1,
            num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        return (records.shuffle(self.shuffle_buffer, seed=shuffle_seed,
                                reshuffle_each_iteration=False)
                .batch(self.batch_size, drop_remainder=True)
                .map(lambda batch: parse_batch(batch, spec, rules),
                     num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
                .take(self.steps)
                .prefetch(tf.data.AUTOTUNE))
