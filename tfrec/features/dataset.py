"""tf.data input pipelines over example sets.

Features of one batch (B = batch size; padding value "" and a boolean mask):
  watch_history       [B, max_history] string, most recent first
  watch_history_mask  [B, max_history] bool, True where a real video id is
  search_tokens       [B, max_search_tokens] string
  search_tokens_mask  [B, max_search_tokens] bool
  example_age         [B] float32, seconds (0 for held-out queries, as at serving)
  <demographic>       [B] string, one per column of the users table (e.g. age, gender)
  user_id, video_id   [B] string; video_id is the label (the watch to predict), or for ranking
                      examples (no label column) the impressed video
  <numeric column>    [B] float32 (ranking features and labels: clicked, watch_time, ...)
A tower feature's column is padded and typed as its `TowerInput` declares (`tfrec.features.tower`):
a ragged column to the width of its UserTowerConfig field, with its mask.
"""
from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping

import numpy as np

from tfrec.features.example_set import ExampleSet
from tfrec.features.ragged import Ragged
from tfrec.features.tower import TowerInput, declared_inputs
from tfrec.keras_check import require_keras2

if typing.TYPE_CHECKING:
    from tfrec.config import UserTowerConfig

# watches_before is a query's cut in its user's watches (`tfrec.features.history`): bookkeeping
# that ties a ranking page to its next-watch example, not a model input.
NON_FEATURE_COLUMNS = ("label", "timestamp", "exclusions", "watches_before")


def input_widths(tower: UserTowerConfig) -> dict[str, int]:
    """{UserTowerConfig field: width} of every registered feature's ragged inputs, for
    `padded_features(examples, **input_widths(tower))`."""
    return {i.width: int(getattr(tower, i.width)) for i in declared_inputs().values()
            if i.width is not None}


def _padded_width(name: str, spec: TowerInput | None, widths: Mapping[str, int]) -> int:
    """The width of ragged column `name`: its tower input's (`spec`) width field, else
    `widths[name]`."""
    key = spec.width if spec is not None and spec.width is not None else name
    if key not in widths:
        raise ValueError(f"ragged column {name!r} needs a width: pass {key}= (a tower feature "
                         "declares the widths of its columns as UserTowerConfig fields)")
    return int(widths[key])


@dataclasses.dataclass(frozen=True)
class FeatureRule:
    """How one example column becomes batch features (the one rule set of the in-memory and the
    streaming inputs).

    Attributes:
      column: the example column; feature: its feature name (the column's; "video_id" for the
        label).
      kind: "padded" ([B, width] string, "" after the row's first `width` values, and a
        `<feature>_mask` [B] bool True where a value is), "float32" ([B]) or "string" ([B]).
      width: the padded width (None unless padded).
    """

    column: str
    feature: str
    kind: str
    width: int | None = None


def feature_rules(columns: Mapping[str, tuple[bool, bool]], max_history: int,
                  max_search_tokens: int, **widths: int) -> list[FeatureRule]:
    """The rules of example columns {name: (ragged, numeric)}, in column order then the label.

    Args:
      columns: whether each column is ragged and, if not, numeric (ints, floats).
      max_history, max_search_tokens, **widths: as in `padded_features`.
    """
    widths = {"max_history": max_history, "max_search_tokens": max_search_tokens, **widths}
    declared = declared_inputs()
    rules = []
    for name, (ragged, numeric) in columns.items():
        if name in NON_FEATURE_COLUMNS:
            continue
        spec = declared.get(name)
        if ragged:
            rules.append(FeatureRule(name, name, "padded", _padded_width(name, spec, widths)))
        elif (spec is not None and spec.dtype == "float32") or numeric:
            rules.append(FeatureRule(name, name, "float32"))
        else:
            rules.append(FeatureRule(name, name, "string"))
    if "label" in columns:
        rules.append(FeatureRule("label", "video_id", "string"))
    return rules


def padded_features(examples: ExampleSet, max_history: int, max_search_tokens: int,
                    **widths: int) -> dict[str, np.ndarray]:
    """numpy feature dict (see module docstring) of an ExampleSet.

    Args:
      examples: ExampleSet.
      max_history, max_search_tokens, **widths: {UserTowerConfig field: width} of the ragged
        columns (a tower feature's `TowerInput.width`; `input_widths(tower)` gives them all), or
        {column: width} for a ragged column no tower feature declares.
    """
    kinds = {name: (isinstance(col, Ragged),
                    not isinstance(col, Ragged) and col.dtype.kind in "biuf")
             for name, col in examples.columns.items()}
    features = {}
    for rule in feature_rules(kinds, max_history, max_search_tokens, **widths):
        col = examples[rule.column]
        if rule.kind == "padded":
            padded = col.map_values(lambda v: v.astype(str).astype(object)).to_padded(
                rule.width, "")
            features[rule.feature] = padded
            features[f"{rule.feature}_mask"] = padded != ""
        elif rule.kind == "float32":
            features[rule.feature] = col.astype(np.float32)
        else:
            features[rule.feature] = col.astype(str).astype(object)
    return features


def candidate_dataset(examples: ExampleSet, batch_size: int, max_history: int = 50,
                      max_search_tokens: int = 64, shuffle_seed: int | None = None,
                      drop_remainder: bool = False, **widths: int) -> typing.Any:
    """A batched, prefetched tf.data.Dataset of feature dicts.

    Args:
      examples: ExampleSet from `build_candidate_examples` (train, validation or test).
      batch_size: examples per batch.
      shuffle_seed: shuffle every epoch (reproducibly) when not None.
      drop_remainder: drop the last partial batch (training: keeps the loss scale fixed).
      max_history, max_search_tokens, **widths: as in `padded_features`.
    Returns:
      tf.data.Dataset.
    """
    tf = require_keras2()
    features = padded_features(examples, max_history, max_search_tokens, **widths)
    ds = tf.data.Dataset.from_tensor_slices(features)
    if shuffle_seed is not None:
        ds = ds.shuffle(len(examples), seed=shuffle_seed, reshuffle_each_iteration=True)
    return ds.batch(batch_size, drop_remainder=drop_remainder).prefetch(tf.data.AUTOTUNE)


class EpochBatches:
    """Training batches whose order is a function of (seed, epoch) only.

    A resumed run must see, in epoch e, exactly the batches an uninterrupted run would: so the
    order is not the state of a reshuffling iterator but a permutation drawn from
    numpy's Generator seeded by [seed, epoch]. The feature tensors are made once; an epoch's
    dataset gathers each batch's rows from them (cheaper than a per-element shuffle buffer).

    Args:
      examples: ExampleSet (training examples).
      batch_size: examples per batch; the last partial batch is dropped (fixed loss scale).
      max_history, max_search_tokens, **widths: input widths, as in `padded_features`.
      seed: int.
    """

    def __init__(self, examples: ExampleSet, batch_size: int, max_history: int = 50,
                 max_search_tokens: int = 64, seed: int = 0, **widths: int) -> None:
        tf = require_keras2()
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.size = len(examples)
        self.steps = self.size // self.batch_size
        self.features = {name: tf.constant(values) for name, values in
                         padded_features(examples, max_history, max_search_tokens,
                                         **widths).items()}

    def epoch(self, epoch: int) -> typing.Any:
        """tf.data.Dataset of the `steps` feature-dict batches of epoch `epoch` (1-based)."""
        tf = require_keras2()
        order = np.random.default_rng([self.seed, epoch]).permutation(self.size)
        rows = order[:self.steps * self.batch_size].reshape(self.steps, self.batch_size)
        features = self.features
        return tf.data.Dataset.from_tensor_slices(rows).map(
            lambda r: {name: tf.gather(t, r) for name, t in features.items()},
            num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).prefetch(tf.data.AUTOTUNE)
