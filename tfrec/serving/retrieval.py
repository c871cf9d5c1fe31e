"""Retrieval servables: raw user features -> top-k video ids and scores.

`BruteForceRetrieval` is exact maximum-inner-product search (one matmul + top_k) built from stock
TensorFlow ops only, so stock TF Serving can serve it. `ScannRetrieval` asks a ScaNN index instead
(needs the scann ops: `import scann` before loading). Both exclude the videos in the request's
watch history: brute force exactly (their scores are set to -inf), ScaNN by fetching
k + (history width) neighbours and dropping the watched ones.

An input of watched video ids (a tower feature's `TowerInput` with `watched`, e.g.
`watch_history` [B, W], newest first, "" padding) may be of any width W up to
MAX_REQUEST_HISTORY: the user tower reads its newest `max_history` ids (cut, or ""-padded when
W is smaller, exactly as training built its histories), and the exclusion covers all W. So a
front end sends the user's whole watch list (up to that maximum) and never gets a watched video
back, as the offline evaluation excludes the whole earlier history.

Signatures: `serving_default` takes the user tower's named inputs; `exclude_watched` takes the
same plus `exclude_ids` [B, E] string ("" padding), more ids never to return (e.g. a user's full
watch list when it is longer than the history input). Fewer than k eligible videos leave
trailing results with score -inf.

Requests are checked in-graph before anything else (`tfrec.serving.request_checks`): wrong
ranks, widths, batch sizes or non-finite floats fail with INVALID_ARGUMENT naming the input;
float inputs are clamped to the ranges their tower features declare (example_age: the training
range). The SignatureDef declares inputs of unknown shape so that every request reaches those
checks; `serving_signature` gives the real ones (manifest).
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tfrec.features.tower import Tensor, registered_tower_features, watched_inputs
from tfrec.tf_keras2 import tf
from tfrec.serving.request_checks import checked_request, relaxed_signature

NEG_INF = float("-inf")
# Most watched ids (watch_history) one request may carry (all are excluded from the results).
MAX_REQUEST_HISTORY = 1000
EXCLUDE_IDS = tf.TensorSpec([None, None], tf.string, name="exclude_ids")


def serving_signature(model: Any) -> dict[str, Any]:
    """{name: tf.TensorSpec} of a Keras model's named inputs, batch dimension None: the declared
    request shapes (the manifest's "inputs"; the signatures accept any shape and check these)."""
    return {name: tf.TensorSpec([None, *tensor.shape[1:]], tensor.dtype, name=name)
            for name, tensor in model.input.items()}


# Plain Python over the tower's declared inputs and the feature registry: run as is when a
# signature traces (AutoGraph need not convert it, nor re-read its source).
@tf.autograph.experimental.do_not_convert
def request_signature(user_tower: Any) -> dict[str, Any]:
    """{name: tf.TensorSpec}: the declared request (the manifest's "inputs"): the user tower's
    inputs, its watched-id inputs of any width [None, None] (at most MAX_REQUEST_HISTORY)."""
    specs = serving_signature(user_tower)
    for name in watched_inputs(specs):
        specs[name] = tf.TensorSpec([None, None], specs[name].dtype, name=name)
    return specs


def tower_width(user_tower: Any, name: str) -> int:
    """The width the user tower reads of its [B, W] input `name` (e.g. its history width)."""
    return int(user_tower.input[name].shape[1])


@tf.autograph.experimental.do_not_convert
def user_input_ranges(user_tower: Any) -> dict[str, tuple[float, float]]:
    """{input: (low, high)} the serving request's floats are clamped to: each tower feature's
    `input_ranges` (example_age: (0, the largest training example age) when the tower takes
    it)."""
    return {name: bounds for feature in registered_tower_features()
            for name, bounds in feature.input_ranges(user_tower).items()}


def checked_user_request(user_tower: Any, features: Mapping[str, Tensor],
                         extra_specs: Mapping[str, Any] | None = None) -> dict[str, Tensor]:
    """The user tower's inputs (and `extra_specs`' ones, e.g. exclude_ids) after the request
    checks, floats clamped (`user_input_ranges`); {name: tensor} with the declared static
    shapes."""
    specs = {**request_signature(user_tower), **(extra_specs or {})}
    widths = {name: MAX_REQUEST_HISTORY for name in watched_inputs(specs)} or None
    return checked_request(features, specs, user_input_ranges(user_tower), widths)


def _fit_width(ids: Tensor, width: int) -> Tensor:
    """[B, W] string ids -> [B, width]: the first `width` columns, "" padding when W < width."""
    ids = ids[:, :width]
    ids = tf.pad(ids, [[0, 0], [0, width - tf.shape(ids)[1]]], constant_values="")
    ids.set_shape([None, width])
    return ids


def query_vectors(user_tower: Any, features: Mapping[str, Tensor], with_bias: bool) -> Tensor:
    """u [B, d] (with a 1 appended when the candidate table carries a bias column); a
    watched-id input (watch_history) of any width is cut or padded to the tower's."""
    inputs = {name: features[name] for name in user_tower.input}
    for name in watched_inputs(inputs):
        inputs[name] = _fit_width(inputs[name], tower_width(user_tower, name))
    u = user_tower(inputs, training=False)
    if with_bias:
        u = tf.concat([u, tf.ones_like(u[:, :1])], axis=1)
    return u


class _Retrieval(tf.Module):
    def __init__(self, user_tower: Any, video_ids: Any, table: Any, k: int, with_bias: bool,
                 name: str | None = None) -> None:
        super().__init__(name=name)
        self.user_tower = user_tower
        self.k = int(k)
        self.with_bias = bool(with_bias)
        self.video_ids = tf.Variable(tf.constant(video_ids, tf.string), trainable=False,
                                     name="video_ids")
        # Row of each video id in `table`; unknown ids (and "" padding) map to -1.
        self.id_to_row = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(tf.constant(video_ids, tf.string),
                                                tf.range(len(video_ids), dtype=tf.int64)), -1)
        self.signature = relaxed_signature(request_signature(user_tower))

    def excluded_rows(self, features: Mapping[str, Tensor],
                      exclude_ids: Tensor | None = None) -> Tensor | None:
        """[B, H + E] table rows never to return (-1 for padding and unknown ids): the ids of
        the request's watched-id inputs (watch_history) and `exclude_ids`; or None."""
        parts = [features[name] for name in watched_inputs(features)]
        if exclude_ids is not None:
            parts.append(exclude_ids)
        if not parts:
            return None
        return self.id_to_row.lookup(tf.concat(parts, axis=1) if len(parts) > 1 else parts[0])

    def _serve(self, features: Mapping[str, Tensor]) -> dict[str, Tensor]:
        return self._retrieve(checked_user_request(self.user_tower, features), None)

    def _serve_with_exclusions(self, features: Mapping[str, Tensor],
                               exclude_ids: Tensor) -> dict[str, Tensor]:
        checked = checked_user_request(self.user_tower, {**features, "exclude_ids": exclude_ids},
                                       {"exclude_ids": EXCLUDE_IDS})
        exclude_ids = checked.pop("exclude_ids")
        return self._retrieve(checked, exclude_ids)

    def _retrieve(self, features: Mapping[str, Tensor],
                  exclude_ids: Tensor | None) -> dict[str, Tensor]:
        raise NotImplementedError("a retrieval servable must define _retrieve")

    def _make_signatures(self) -> None:
        self.serve = tf.function(self._serve, input_signature=[self.signature])
        self.serve_with_exclusions = tf.function(
            self._serve_with_exclusions,
            input_signature=[self.signature,
                             relaxed_signature({"exclude_ids": EXCLUDE_IDS})["exclude_ids"]])

    def signatures(self) -> dict[str, Any]:
        return {"serving_default": self.serve, "exclude_watched": self.serve_with_exclusions}


class BruteForceRetrieval(_Retrieval):
    """Exact top-k by dot product over the whole table, watched videos excluded.

    Args:
      user_tower: Keras model of named inputs -> u [B, d].
      video_ids: [V] string ids; table: [V, d'] float32 candidate vectors (d' = d + 1 with bias).
      k: results per query.
      with_bias: the last column of `table` is a bias (a 1 is appended to u).
    """

    def __init__(self, user_tower: Any, video_ids: Any, table: Any, k: int = 100,
                 with_bias: bool = False, name: str | None = None) -> None:
        super().__init__(user_tower, video_ids, table, k, with_bias, name=name)
        self.table = tf.Variable(tf.constant(table, tf.float32), trainable=False, name="table")
        self._make_signatures()

    def _retrieve(self, features: Mapping[str, Tensor],
                  exclude_ids: Tensor | None) -> dict[str, Tensor]:
        u = query_vectors(self.user_tower, features, self.with_bias)
        scores = tf.matmul(u, self.table, transpose_b=True)  # [B, V]
        rows = self.excluded_rows(features, exclude_ids)
        if rows is not None:
            batch_index = tf.broadcast_to(tf.range(tf.shape(rows)[0], dtype=tf.int64)[:, None],
                                          tf.shape(rows))
            keep = rows >= 0
            indices = tf.stack([tf.boolean_mask(batch_index, keep), tf.boolean_mask(rows, keep)],
                               axis=1)
            scores = tf.tensor_scatter_nd_update(
                scores, indices, tf.fill([tf.shape(indices)[0]], NEG_INF))
        k = tf.minimum(self.k, tf.shape(scores)[1])
        top = tf.math.top_k(scores, k=k)
        return {"video_ids": tf.gather(self.video_ids, top.indices), "scores": top.values}


class ScannRetrieval(_Retrieval):
    """Approximate top-k from a ScaNN index over the table, watched videos excluded.

    Args:
      searcher_module: `scann_ops.builder(...).build().serialize_to_module()`.
      search_kwargs: ScaNN search-time parameters (leaves_to_search, pre_reorder_num_neighbors).
      others as BruteForceRetrieval.
    k + (the request's watched-id widths + exclude_ids width) neighbours are fetched, so k remain
    after the exclusions.
    """

    def __init__(self, user_tower: Any, video_ids: Any, searcher_module: Any, k: int = 100,
                 with_bias: bool = False, search_kwargs: Mapping[str, Any] | None = None,
                 name: str | None = None) -> None:
        super().__init__(user_tower, video_ids, None, k, with_bias, name=name)
        self.searcher_module = searcher_module
        self.leaves_to_search = int((search_kwargs or {}).get("leaves_to_search") or -1)
        self.reorder = int((search_kwargs or {}).get("pre_reorder_num_neighbors") or -1)
        self._make_signatures()

    def _retrieve(self, features: Mapping[str, Tensor],
                  exclude_ids: Tensor | None) -> dict[str, Tensor]:
        from scann.scann_ops.py import scann_ops
        searcher = scann_ops.searcher_from_module(self.searcher_module)
        u = query_vectors(self.user_tower, features, self.with_bias)
        fetch = tf.constant(self.k)
        for name in watched_inputs(features):
            fetch += tf.shape(features[name])[1]
        if exclude_ids is not None:
            fetch += tf.shape(exclude_ids)[1]
        # ScaNN returns at most the reordering depth: never ask for fewer than we fetch.
        reorder = tf.maximum(self.reorder, fetch) if self.reorder > 0 else -1
        result = searcher.search_batched_parallel(u, final_num_neighbors=fetch,
                                                  pre_reorder_num_neighbors=reorder,
                                                  leaves_to_search=self.leaves_to_search)
        rows = tf.cast(result.indices, tf.int64)  # [B, fetch]
        scores = result.distances
        excluded = self.excluded_rows(features, exclude_ids)
        if excluded is not None:
            hit = tf.reduce_any(tf.equal(rows[:, :, None], excluded[:, None, :]), axis=2)
            scores = tf.where(hit, NEG_INF, scores)
        top = tf.math.top_k(scores, k=tf.minimum(self.k, tf.shape(scores)[1]))
        return {"video_ids": tf.gather(self.video_ids, tf.gather(rows, top.indices,
                                                                  batch_dims=1)),
                "scores": top.values}
