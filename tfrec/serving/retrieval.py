"""Retrieval servables: raw user features -> top-k video ids and scores.

`BruteForceRetrieval` is exact maximum-inner-product search (one matmul + top_k) built from stock
TensorFlow ops only, so stock TF Serving can serve it. `ScannRetrieval` asks a ScaNN index instead
(needs the scann ops: `import scann` before loading). Both exclude the videos in the request's
watch history: brute force exactly (their scores are set to -inf), ScaNN by fetching
k + max_history neighbours and dropping the watched ones.
"""
from tfrec.keras_check import require_keras2

tf = require_keras2()

NEG_INF = float("-inf")


def serving_signature(user_tower):
    """[tf.TensorSpec] of the user tower's named inputs, batch dimension None."""
    return {name: tf.TensorSpec([None, *tensor.shape[1:]], tensor.dtype, name=name)
            for name, tensor in user_tower.input.items()}


def query_vectors(user_tower, features, with_bias):
    """u [B, d] (with a 1 appended when the candidate table carries a bias column)."""
    u = user_tower({name: features[name] for name in user_tower.input}, training=False)
    if with_bias:
        u = tf.concat([u, tf.ones_like(u[:, :1])], axis=1)
    return u


class _Retrieval(tf.Module):
    def __init__(self, user_tower, video_ids, table, k, with_bias, name=None):
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
        self.signature = serving_signature(user_tower)

    def history_rows(self, features):
        """[B, H] table rows of the watch history (-1 for padding and unknown ids)."""
        if "watch_history" not in features:
            return None
        return self.id_to_row.lookup(features["watch_history"])


class BruteForceRetrieval(_Retrieval):
    """Exact top-k by dot product over the whole table, watched videos excluded.

    Args:
      user_tower: Keras model of named inputs -> u [B, d].
      video_ids: [V] string ids; table: [V, d'] float32 candidate vectors (d' = d + 1 with bias).
      k: results per query.
      with_bias: the last column of `table` is a bias (a 1 is appended to u).
    """

    def __init__(self, user_tower, video_ids, table, k=100, with_bias=False, name=None):
        super().__init__(user_tower, video_ids, table, k, with_bias, name=name)
        self.table = tf.Variable(tf.constant(table, tf.float32), trainable=False, name="table")
        self.serve = tf.function(self._serve, input_signature=[self.signature])

    def _serve(self, features):
        u = query_vectors(self.user_tower, features, self.with_bias)
        scores = tf.matmul(u, self.table, transpose_b=True)  # [B, V]
        rows = self.history_rows(features)
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
      max_history: the watch-history width; k + max_history neighbours are fetched.
      search_kwargs: ScaNN search-time parameters (leaves_to_search, pre_reorder_num_neighbors).
      others as BruteForceRetrieval.
    """

    def __init__(self, user_tower, video_ids, searcher_module, k=100, with_bias=False,
                 max_history=0, search_kwargs=None, name=None):
        super().__init__(user_tower, video_ids, None, k, with_bias, name=name)
        self.searcher_module = searcher_module
        self.search_kwargs = dict(search_kwargs or {})
        self.fetch = int(k) + int(max_history)
        self.serve = tf.function(self._serve, input_signature=[self.signature])

    def _serve(self, features):
        from scann.scann_ops.py import scann_ops
        searcher = scann_ops.searcher_from_module(self.searcher_module)
        u = query_vectors(self.user_tower, features, self.with_bias)
        result = searcher.search_batched_parallel(u, final_num_neighbors=self.fetch,
                                                  **self.search_kwargs)
        rows = tf.cast(result.indices, tf.int64)  # [B, fetch]
        scores = result.distances
        history = self.history_rows(features)
        if history is not None:
            watched = tf.reduce_any(tf.equal(rows[:, :, None], history[:, None, :]), axis=2)
            scores = tf.where(watched, NEG_INF, scores)
        top = tf.math.top_k(scores, k=tf.minimum(self.k, tf.shape(scores)[1]))
        return {"video_ids": tf.gather(self.video_ids, tf.gather(rows, top.indices,
                                                                  batch_dims=1)),
                "scores": top.values}
