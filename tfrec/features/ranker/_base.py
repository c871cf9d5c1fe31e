"""What a ranker feature group declares (`RankerFeature`), and what its encoding is given
(`EncodingContext`). No TensorFlow at import: a group's declarations are read by the config check
and the example builder; only its `encode` builds Keras layers.
"""
import abc
import dataclasses
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar, Literal

import numpy as np

from tfrec.config import RankingConfig
from tfrec.features.example_set import ExampleSet
from tfrec.features.ranker import RANKER_FEATURES
from tfrec.features.ranker._pages import RankingPages

Encoding = Literal["custom", "cdf", "indicator"]
KerasTensor = Any  # a symbolic Keras tensor (tf-keras has no type stubs)


@dataclasses.dataclass(frozen=True)
class RankerInput:
    """One named input of the ranker: a column of the ranking examples, a key of the exported
    ranker's request (its serving signature: [None, *shape] of `dtype`).

    Attributes:
      name: input and column name.
      dtype: "string" | "float32".
      shape: per example: () for a scalar, (H,) for a fixed-width list (e.g. watch_history).
      encoding: how it enters the ranker's input:
        custom     the group's `encode` turns it into parts (embeddings, ...);
        cdf        the training CDF x~ with x~^2 and sqrt(x~) (`tfrec.models.layers.EmpiricalCDF`;
                   one layer for the cdf inputs of every group, boundaries fitted on training);
        indicator  a 0/1 value fed as it is (clamped to [0, 1] at serving).
    """

    name: str
    dtype: Literal["string", "float32"]
    shape: tuple[int, ...] = ()
    encoding: Encoding = "custom"


class EncodingContext:
    """What a group's `encode` is given while the ranker's scorer is built.

    Attributes:
      config: the RankingConfig.
      artifacts: the fitted artifacts (`video_ids`, the groups' `fit` results, `boundaries`).
      regularizer: the l2 regularizer of kernels and embeddings (None without l2).
      inputs: the Keras inputs created so far, by name (the scorer's inputs, in order).
    """

    def __init__(self, config: RankingConfig, artifacts: Mapping[str, Any],
                 specs: Mapping[str, RankerInput], regularizer: Any = None) -> None:
        self.config = config
        self.artifacts = artifacts
        self.regularizer = regularizer
        self.inputs: dict[str, KerasTensor] = {}
        self._specs = dict(specs)
        self._shared: dict[str, Any] = {}

    def input(self, name: str) -> KerasTensor:
        """The Keras input `name` as its group declared it ([B, *shape]), created on first use (its
        creation order is the scorer's input order)."""
        if name not in self.inputs:
            if name not in self._specs:
                raise ValueError(f"no configured ranker feature declares the input {name!r}")
            from tfrec.tf_keras2 import tf
            spec = self._specs[name]
            self.inputs[name] = tf.keras.Input(spec.shape, dtype=tf.as_dtype(spec.dtype),
                                               name=name)
        return self.inputs[name]

    def shared(self, key: str, make: Callable[[], Any]) -> Any:
        """`make()`'s result, made once per scorer (layers two groups share, e.g. the video
        embedding table of video_id and watch_history)."""
        if key not in self._shared:
            self._shared[key] = make()
        return self._shared[key]


class RankerFeature(abc.ABC):
    """A ranker feature group, as `ranking.model.features` names it (one module per group).

    A group declares:
      `inputs(config)`: its Keras inputs (names, dtypes, shapes, encodings); each is also the
        ranking-example column of that name.
      `page_columns` / `compute_page_columns(pages)`: the example columns it computes offline
        from the event tables, for every impression (`tfrec.features.ranking_examples` calls it
        for every registered group, so the examples' columns do not depend on the config). A
        column that needs more than the event tables (cg_score: the generator) is computed by its
        module's own function and named in `column_hint`.
      `fit(config, train_examples)`: what it learns from the training impressions before training
        (vocabularies; JSON-able, saved with the ranker's artifacts).
      `encode(context)`: its custom inputs -> parts of the ranker's input (Keras tensors [B, d]).
        cdf and indicator inputs need no code: the scorer encodes them together.
    Issue #17 will compute the same columns in TensorFlow inside the serving graph, from a raw
    request and per-video tables: that computation goes beside `compute_page_columns` in the
    group's module (one method per place the columns are computed, the same column names).

    Class attributes:
      name: the config name (set by `register_ranker_feature`).
      slot: where the group's parts, cdf and indicator inputs and page columns go among the
        groups' (lower first; ties by name): the ranker's input order, whatever the config's.
      page_columns: the names `compute_page_columns` returns, in order.
      needs_candidate_generator: its inputs come from the candidate generator (a config with
        the ranker but without candidate generation is refused).
      column_hint: where its columns come from, for the error when examples lack them.
    """

    name: ClassVar[str]
    slot: ClassVar[int] = 100
    page_columns: ClassVar[tuple[str, ...]] = ()
    needs_candidate_generator: ClassVar[bool] = False
    column_hint: ClassVar[str] = ""

    @abc.abstractmethod
    def inputs(self, config: RankingConfig) -> tuple[RankerInput, ...]:
        """The group's inputs (see `RankerInput`), in order."""

    def compute_page_columns(self, pages: RankingPages) -> dict[str, np.ndarray]:
        """{column: [n] values} of `page_columns` for the impressions of `pages` (none here)."""
        return {}

    def fit(self, config: RankingConfig, train_examples: ExampleSet) -> dict[str, Any]:
        """JSON-able artifacts fitted on the training impressions (none here)."""
        return {}

    def encode(self, context: EncodingContext) -> list[KerasTensor]:
        """Parts [B, d] of the ranker's input from the group's custom inputs, created with
        `context.input(name)` (none here)."""
        return []


def ranker_features(names: Iterable[str]) -> list[RankerFeature]:
    """The named groups (one instance each), in slot order, ties by name: the order of their
    parts in the ranker's input and of their page columns in the examples. Raises ValueError
    naming the choices for an unknown name."""
    classes = {RANKER_FEATURES.get(name) for name in names}
    return [cls() for cls in sorted(classes, key=lambda c: (c.slot, c.name))]


def page_features() -> list[RankerFeature]:
    """Every registered group, in slot order (the example builder computes all their columns, so
    the examples and the signature do not depend on the config)."""
    return ranker_features(RANKER_FEATURES.names())
