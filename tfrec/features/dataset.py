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
"""
import numpy as np

from tfrec.features.ragged import Ragged
from tfrec.keras_check import require_keras2

# watches_before is a query's cut in its user's watches (`tfrec.features.history`): bookkeeping
# that ties a ranking page to its next-watch example, not a model input.
NON_FEATURE_COLUMNS = ("label", "timestamp", "exclusions", "watches_before")


def padded_features(examples, max_history, max_search_tokens):
    """numpy feature dict (see module docstring) of an ExampleSet."""
    features = {}
    for name, col in examples.columns.items():
        if name in NON_FEATURE_COLUMNS:
            continue
        if isinstance(col, Ragged):
            width = max_history if name == "watch_history" else max_search_tokens
            padded = col.map_values(lambda v: v.astype(str).astype(object)).to_padded(width, "")
            features[name] = padded
            features[f"{name}_mask"] = padded != ""
        elif name == "example_age" or col.dtype.kind in "biuf":
            features[name] = col.astype(np.float32)
        else:
            features[name] = col.astype(str).astype(object)
    if "label" in examples.columns:
        features["video_id"] = examples["label"].astype(str).astype(object)
    return features


def candidate_dataset(examples, batch_size, max_history=50, max_search_tokens=64, shuffle_seed=None,
                      drop_remainder=False):
    """A batched, prefetched tf.data.Dataset of feature dicts.

    Args:
      examples: ExampleSet from `build_candidate_examples` (train, validation or test).
      batch_size: examples per batch.
      shuffle_seed: shuffle every epoch (reproducibly) when not None.
      drop_remainder: drop the last partial batch (training: keeps the loss scale fixed).
    """
    tf = require_keras2()
    features = padded_features(examples, max_history, max_search_tokens)
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
      max_history, max_search_tokens: input widths.
      seed: int.
    """

    def __init__(self, examples, batch_size, max_history=50, max_search_tokens=64, seed=0):
        tf = require_keras2()
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.size = len(examples)
        self.steps = self.size // self.batch_size
        self.features = {name: tf.constant(values) for name, values in
                         padded_features(examples, max_history, max_search_tokens).items()}

    def epoch(self, epoch):
        """tf.data.Dataset of the `steps` feature-dict batches of epoch `epoch` (1-based)."""
        tf = require_keras2()
        order = np.random.default_rng([self.seed, epoch]).permutation(self.size)
        rows = order[:self.steps * self.batch_size].reshape(self.steps, self.batch_size)
        features = self.features
        return tf.data.Dataset.from_tensor_slices(rows).map(
            lambda r: {name: tf.gather(t, r) for name, t in features.items()},
            num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).prefetch(tf.data.AUTOTUNE)
