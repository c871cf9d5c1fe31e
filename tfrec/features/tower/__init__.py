"""The user tower's features: one module per feature, named as in the config's tower.features.

A feature is one `TowerFeature` subclass registered under its config name
(`tfrec.features.tower_registry`), and it declares everything about itself:

  example_columns  its example columns at a user's cuts: pure, from that user's events before
                   each cut (ids as the integer codes of the local driver; `CODES` says which
                   vocabulary decodes them back to strings)
  user_columns     columns joined per user from the users table (demographics)
  INPUTS / inputs  its named serving inputs (dtype, width from a UserTowerConfig field, whether
                   its ids are watched videos): the Keras Inputs, the SavedModel signature and the
                   padding/dtype of its tf.data input (`tfrec.features.dataset.padded_features`)
  encode           its Keras layers into the tower's concatenated input (or a shift of u)
  input_ranges     serving values clamped to the training range (example_age)
  request          how `tfrec recommend` fills its inputs for a user from the event tables

The example builder, the tower, the tf.data input, the servables and `tfrec recommend` loop over
the features and call these; none of them names a feature. Adding a feature is adding one module
here (and its test): docs/EXTENDING_TOWER_FEATURE.md.

Order: the tower builds its features by `order` (then name), not in the config list's order,
because Keras draws initial weights in layer-creation order under the global seed: a config's
listing order changes nothing, and adding a feature (default order 100, after the shipped ones)
leaves the others' layers and example columns where they were.

This module imports no TensorFlow (the Keras hooks import it when called), so example building
and config checks stay TensorFlow-free.
"""
from __future__ import annotations

import abc
import dataclasses
import typing
from collections.abc import Callable, Iterable, Mapping

import numpy as np
import pandas as pd

from tfrec.features.ragged import Ragged
from tfrec.features.tower_registry import TOWER_FEATURES

if typing.TYPE_CHECKING:
    from tfrec.config import ExampleConfig, UserTowerConfig
    from tfrec.features.candidate_examples import UserSearches

# TensorFlow ships no type information: its tensors and layers are Any to the checker.
Tensor = typing.Any
Column = np.ndarray | Ragged
# A request input as the export's manifest declares it: {"dtype": "string", "shape": [None, 50]}.
RequestSpec = Mapping[str, typing.Any]
DTYPES = ("string", "float32")


@dataclasses.dataclass(frozen=True)
class TowerInput:
    """One named input of the user tower.

    Attributes:
      name: the Keras Input's, the example column's and the serving signature's name.
      dtype: "string" or "float32".
      width: None for a [B] input; else the UserTowerConfig field holding its width W: the
        input is [B, W], its example column a Ragged padded with "" (and a `<name>_mask` in the
        tf.data input).
      watched: its ids are videos the user watched: a serving request may carry any number of
        them (up to `tfrec.serving.retrieval.MAX_REQUEST_HISTORY`, newest first), the tower reads
        the first W, and the servables never return any of them.
    """

    name: str
    dtype: str
    width: str | None = None
    watched: bool = False

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise ValueError(f"tower input {self.name!r}: dtype must be one of {DTYPES}, "
                             f"got {self.dtype!r}")
        if self.watched and self.width is None:
            raise ValueError(f"tower input {self.name!r}: watched ids need a width")

    def shape(self, tower: UserTowerConfig) -> tuple[int, ...]:
        """The input's shape without the batch dimension: () or (W,) with W read from `tower`."""
        if self.width is None:
            return ()
        if not hasattr(tower, self.width):
            raise ValueError(f"tower input {self.name!r}: its width field {self.width!r} is not "
                             "a field of candidate_generation.tower")
        return (int(getattr(tower, self.width)),)


@dataclasses.dataclass(frozen=True)
class UserEvents:
    """One user's events, as the example builder hands them to the features.

    Attributes:
      watches: {column: [n]} the user's watches in the project's watch order
        (`tfrec.features.ordering`): video_id (integer codes in the local driver), timestamp
        (int64 s) and the watches table's other columns (watch_time float64 s, ...).
      searches: `tfrec.features.candidate_examples.UserSearches`, ascending in time.
    """

    watches: Mapping[str, np.ndarray]
    searches: UserSearches


@dataclasses.dataclass(frozen=True)
class Cuts:
    """m queries of one user: `positions` [m] int64, the number of the user's watches before
    each (its cut, `tfrec.features.history`), and `times` [m] int64 s, each query's time (the
    label's)."""

    positions: np.ndarray
    times: np.ndarray


@dataclasses.dataclass(frozen=True)
class TowerContext:
    """What the model hands every feature's encoding.

    Attributes:
      video_lookup: StringLookup over the video ids (mask "" -> 0, OOV -> 1), shared with the
        softmax side.
      video_embedding: Embedding of watched videos (the softmax table when shared).
      demographic_vocabularies: {users column: values seen in training}.
      max_example_age_seconds: the largest training example age (s).
      regularizer: the L2 regularizer of the input embeddings, or None.
      seed: the training seed, for the features' dropout masks.
    """

    video_lookup: Tensor
    video_embedding: Tensor
    demographic_vocabularies: Mapping[str, typing.Sequence[str]]
    max_example_age_seconds: float
    regularizer: Tensor = None
    seed: int = 0


@dataclasses.dataclass
class Encoding:
    """A feature's part of the tower.

    Attributes:
      parts: [B, d_i] tensors concatenated (in feature order) into the ReLU tower's input.
      output_shift: None, or a function u [B, d] -> u' [B, d] applied after the ReLU tower
        (example_age's `output_shift` path); its layers are created when it is called.
    """

    parts: list[Tensor]
    output_shift: Callable[[Tensor], Tensor] | None = None


@dataclasses.dataclass(frozen=True)
class ServingUser:
    """One user's data for a serving request (`tfrec recommend`).

    Attributes:
      user_id: str.
      watches: the user's watches table rows in watch order (oldest first).
      profile: the user's row of the users table (demographics by column).
      max_request_history: the export's limit on watched ids of any width, or None.
    """

    user_id: str
    watches: pd.DataFrame
    profile: pd.Series
    max_request_history: int | None = None


class TowerFeature(abc.ABC):
    """Base of the tower features (see the module docstring for the duties).

    Class attributes:
      name: the config name, set by `register_tower_feature`.
      order: the feature's place in the tower and among the example columns (module docstring).
      INPUTS: the feature's inputs, when they do not depend on the config.
      CODES: {example column: vocabulary} for columns holding integer codes: "video_id" (the
        videos table) or "search_token" (the tokens of the searches table).
    """

    name: typing.ClassVar[str] = ""
    order: typing.ClassVar[int] = 100
    INPUTS: typing.ClassVar[tuple[TowerInput, ...]] = ()
    CODES: typing.ClassVar[Mapping[str, str]] = {}

    def inputs(self, tower: UserTowerConfig) -> tuple[TowerInput, ...]:
        """The feature's inputs under `tower` (default: INPUTS)."""
        return self.INPUTS

    def example_columns(self, events: UserEvents, cuts: Cuts,
                        config: ExampleConfig) -> dict[str, Column]:
        """{column: [m] array or Ragged with m rows} at the user's m cuts; pure: from the user's
        events before each cut only. Default: none (the feature reads columns made elsewhere)."""
        return {}

    def user_columns(self, users: pd.DataFrame, user_ids: np.ndarray) -> dict[str, np.ndarray]:
        """{column: [n]} joined per example from the users table (indexed by user_id) for the
        examples' `user_ids` [n]. Default: none."""
        return {}

    @abc.abstractmethod
    def encode(self, inputs: Mapping[str, Tensor], tower: UserTowerConfig,
               context: TowerContext) -> Encoding:
        """The feature's Keras layers on its Keras Inputs ({name: tensor} of `inputs(tower)`)."""

    def input_ranges(self, user_tower: Tensor) -> dict[str, tuple[float, float]]:
        """{input: (low, high)} float serving inputs are clamped to, for a built tower. Default:
        none."""
        return {}

    def request(self, specs: Mapping[str, RequestSpec],
                user: ServingUser) -> dict[str, np.ndarray]:
        """{input: [1, ...] numpy} for those of the request's `specs` this feature fills.
        Default: `request_value` for each of INPUTS among `specs`."""
        return {i.name: self.request_value(i, specs[i.name], user)
                for i in self.INPUTS if i.name in specs}

    def request_value(self, tower_input: TowerInput, spec: RequestSpec,
                      user: ServingUser) -> np.ndarray:
        """The [1, ...] value of `tower_input` for `user` (its declared `spec`)."""
        raise NotImplementedError(f"tower feature {self.name!r} must say how a request fills "
                                  f"{tower_input.name!r} (request or request_value)")


def tower_features(names: Iterable[str]) -> list[TowerFeature]:
    """Instances of the features `names` (each once), by (order, name). Raises ValueError naming
    the choices for an unknown name."""
    classes = {name: TOWER_FEATURES.get(name) for name in names}
    return [classes[name]() for name in sorted(classes, key=lambda n: (classes[n].order, n))]


def registered_tower_features() -> list[TowerFeature]:
    """Every registered feature, by (order, name): the example builder makes all their columns,
    so one example set serves every tower config."""
    return tower_features(TOWER_FEATURES.names())


def declared_inputs() -> dict[str, TowerInput]:
    """{name: TowerInput} of the registered features' config-independent inputs (INPUTS).
    Raises ValueError when two features declare one name."""
    declared: dict[str, TowerInput] = {}
    owner: dict[str, str] = {}
    for feature in registered_tower_features():
        for tower_input in feature.INPUTS:
            if tower_input.name in declared:
                raise ValueError(f"tower features {owner[tower_input.name]!r} and "
                                 f"{feature.name!r} both declare the input "
                                 f"{tower_input.name!r}")
            declared[tower_input.name] = tower_input
            owner[tower_input.name] = feature.name
    return declared


def watched_inputs(names: Iterable[str]) -> list[str]:
    """Those of `names` (in their order) that are inputs of watched video ids."""
    declared = declared_inputs()
    return [n for n in names if n in declared and declared[n].watched]
