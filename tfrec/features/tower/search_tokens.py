"""search_tokens: tokens of the user's most recent searches before the query time.

  example column  search_tokens  Ragged tokens of the last `examples.max_search_queries`
                                 searches strictly before the query time, newest query first
  input           search_tokens  [B, max_search_tokens] string, "" padding
  encoding        hashed (`search_token_hash`, search_buckets), embedded
                  (`search_token_embedding`), masked mean (`search_tokens_mean`)
  request         no tokens ("" only): `tfrec recommend` reads no searches
"""
from __future__ import annotations

import typing
from collections.abc import Mapping

import numpy as np

from tfrec.features.history import cuts_at_times, rows_before
from tfrec.features.ragged import Ragged, ranges
from tfrec.features.tower import (Column, Cuts, Encoding, RequestSpec, ServingUser, Tensor,
                                  TowerContext, TowerFeature, TowerInput, UserEvents)
from tfrec.features.tower_registry import register_tower_feature
from tfrec.keras_check import require_keras2

if typing.TYPE_CHECKING:
    from tfrec.config import ExampleConfig, UserTowerConfig
    from tfrec.features.candidate_examples import UserSearches


def search_tokens_before(searches: UserSearches, query_times: np.ndarray,
                         max_queries: int) -> Ragged:
    """Tokens of the most recent searches strictly before each query time [m] (newest query
    first): a Ragged of m rows."""
    if len(searches.timestamps) == 0:
        return Ragged(searches.tokens.values[:0], np.zeros(len(query_times), np.int64))
    query_idx, per_row = rows_before(cuts_at_times(searches.timestamps, query_times),
                                     max_queries)
    token_lengths = searches.tokens.lengths[query_idx]
    flat = ranges(searches.tokens.offsets[:-1][query_idx], token_lengths)
    row_of_query = np.repeat(np.arange(len(query_times)), per_row)
    lengths = np.bincount(row_of_query, weights=token_lengths, minlength=len(query_times))
    return Ragged(searches.tokens.values[flat], lengths.astype(np.int64))


@register_tower_feature("search_tokens")
class SearchTokens(TowerFeature):
    """The user's recent search tokens, as a bag of hashed-token embeddings."""

    order = 20
    INPUTS = (TowerInput("search_tokens", "string", width="max_search_tokens"),)
    CODES = {"search_tokens": "search_token"}

    def example_columns(self, events: UserEvents, cuts: Cuts,
                        config: ExampleConfig) -> dict[str, Column]:
        return {"search_tokens": search_tokens_before(events.searches, cuts.times,
                                                      config.max_search_queries)}

    def encode(self, inputs: Mapping[str, Tensor], tower: UserTowerConfig,
               context: TowerContext) -> Encoding:
        from tfrec.models.layers import MaskedMean
        tf = require_keras2()
        buckets = tf.keras.layers.Hashing(tower.search_buckets + 1, mask_value="",
                                          name="search_token_hash")(inputs["search_tokens"])
        emb = tf.keras.layers.Embedding(tower.search_buckets + 1, tower.search_dim,
                                        embeddings_regularizer=context.regularizer,
                                        name="search_token_embedding")(buckets)
        return Encoding([MaskedMean(name="search_tokens_mean")(emb, tf.not_equal(buckets, 0))])

    def request_value(self, tower_input: TowerInput, spec: RequestSpec,
                      user: ServingUser) -> np.ndarray:
        return np.array([[""] * spec["shape"][1]], dtype=object)
