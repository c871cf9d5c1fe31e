"""The local (single-process, vectorised) driver of example building.

It orders and splits watches, encodes ids as integer codes for speed, slices each user's events and
calls the pure per-user function `tfrec.features.candidate_examples.user_examples`, then decodes
the codes back to string ids (each tower feature's `CODES` say which vocabulary) and joins the
features' per-user columns (demographics). The Beam driver (`tfrec.features.beam_driver`) calls
the same function per user, and `encode_searches` and `decode_user_columns` of this module.
"""
from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from tfrec.config import EvaluationConfig, ExampleConfig
from tfrec.data.errors import DataError
from tfrec.features.candidate_examples import (HELD_OUT_ROLES, WINDOW_SPLITS, UserSearches,
                                               user_examples)
from tfrec.features.example_set import ExampleSet
from tfrec.features.ordering import order_watches
from tfrec.features.ragged import Ragged
from tfrec.features.tower import Column, TowerFeature, registered_tower_features
from tfrec.features.split import (TEST, TRAIN, VALIDATION, TimeWindows, time_windows, user_bounds,
                                  watch_roles)

if typing.TYPE_CHECKING:
    from tfrec.data.schema import EventTables


@dataclasses.dataclass
class CandidateExamples:
    """Training examples and the held-out queries (P1, or P3 when `windows` is set).

    train: label, user_id, timestamp, example_age (s), watches_before (the label's position in
      the user's watch order: the example's cut, `tfrec.features.history`), watch_history,
      search_tokens, demographics.
    validation / test: the same columns (example_age 0) plus exclusions (all earlier watches).
    train_watches: the ordered training-part watches (for popularity and vocabularies).
    end_of_training: last training timestamp (s).
    windows: the P3 TimeWindows, or None under P1.
    window_queries: under P3, {"validation_window", "test_window"}: a next-watch query (same
      columns as validation) at every watch inside the window that has an earlier watch, the
      pages a ranker trains (validation window) and is tested on (test window) when the source
      logged no impressions; None under P1.
    train_shards: the folder of the training examples as TFRecord shards and their facts file
      (`tfrec.features.example_records`, split "train") when training streams; else None.
    """

    train: ExampleSet
    validation: ExampleSet
    test: ExampleSet
    train_watches: pd.DataFrame
    end_of_training: int
    windows: typing.Optional[TimeWindows] = None
    window_queries: typing.Optional[dict] = None
    train_shards: typing.Optional[str] = None

    def counts(self) -> dict[str, int]:
        return {"train": len(self.train), "validation": len(self.validation),
                "test": len(self.test)}


def tokenize_query(query: object) -> list[str]:
    """Search query -> tokens: lower-cased, split on whitespace."""
    return str(query).lower().split()


def encode_searches(searches: pd.DataFrame) -> tuple[dict[str, UserSearches], np.ndarray]:
    """Per-user UserSearches with token codes, and the token vocabulary."""
    if len(searches) == 0:
        return {}, np.zeros(0, dtype=object)
    # Same-second searches by query: the order is a function of the rows, not of the file's row
    # order (which a distributed read does not keep).
    ordered = searches.sort_values(["user_id", "timestamp", "query"], kind="stable"
                                   ).reset_index(drop=True)
    tokens = [tokenize_query(q) for q in ordered["query"]]
    lengths = np.fromiter((len(t) for t in tokens), np.int64, len(tokens))
    flat = np.array([tok for toks in tokens for tok in toks], dtype=object)
    codes, vocab = pd.factorize(flat)
    all_tokens = Ragged(codes.astype(np.int64), lengths)
    users = ordered["user_id"].to_numpy()
    times = ordered["timestamp"].to_numpy(np.int64)
    out = {}
    offsets = all_tokens.offsets  # computed once: per-user slices are then O(own searches)
    for start, end in zip(*user_bounds(users)):
        out[users[start]] = UserSearches(
            times[start:end], Ragged(all_tokens.values[offsets[start]:offsets[end]],
                                     all_tokens.lengths[start:end]))
    return out, np.asarray(vocab, dtype=object)


# Every split a driver builds: training examples, held-out queries, the P3 windows' queries.
SPLITS = ("train", *HELD_OUT_ROLES, *WINDOW_SPLITS)
# The example columns of every example set that hold video codes, whatever the features.
VIDEO_CODE_COLUMNS = ("label", "exclusions")


def _decoded(column: Column, vocabulary: np.ndarray) -> Column:
    """Integer codes -> the vocabulary's ids (a Ragged's values, or an array)."""
    if isinstance(column, Ragged):
        return column.map_values(lambda v: vocabulary[v])
    return vocabulary[column]


def decode_user_columns(columns: Mapping[str, Column], vocabularies: Mapping[str, np.ndarray],
                        users: pd.DataFrame, features: Sequence[TowerFeature]) -> ExampleSet:
    """Codes -> string ids (by the vocabulary each column's feature names); then each feature's
    columns joined by user (demographics)."""
    codes = {name: "video_id" for name in VIDEO_CODE_COLUMNS}
    for feature in features:
        codes.update(feature.CODES)
    out = {name: col if name not in codes else _decoded(col, vocabularies[codes[name]])
           for name, col in columns.items()}
    user_ids = out["user_id"]
    assert isinstance(user_ids, np.ndarray)  # one id per example, never ragged
    for feature in features:
        out.update(feature.user_columns(users, user_ids))
    return ExampleSet(out)


def check_held_out(roles: np.ndarray, windows: TimeWindows | None, source: str) -> None:
    """DataError (naming `source`, the watches file) when the roles [n] leave no test target, or
    under P3 (`windows` set) no training watch, validation target or test target."""
    if windows is not None:
        if not ((roles == TEST).any() and (roles == VALIDATION).any() and (roles == TRAIN).any()):
            raise DataError(source, f"the P3 time split {windows.to_dict()} leaves no training "
                            "watch, validation target or test target")
    elif not (roles == TEST).any():
        raise DataError(source, "no user has the 3 watches needed for a validation and a test "
                        "target")


def build_candidate_examples(events: EventTables, config: ExampleConfig | None = None,
                             progress: Callable[[int, int], None] | None = None,
                             protocol: EvaluationConfig | None = None) -> CandidateExamples:
    """All candidate-generation examples and held-out queries of a validated EventTables.

    Args:
      events: tfrec.data.schema.EventTables.
      config: ExampleConfig (None: the defaults).
      protocol: None or EvaluationConfig-like with `protocol` ("p1" or "p3"),
        `p3_window_days` and `p3_window_share` (`tfrec.features.split.time_windows`).
      progress: optional callable(done_users, total_users), called now and then.
    Returns:
      CandidateExamples, with the columns of every registered tower feature.
    """
    config = config or ExampleConfig.model_validate({})  # the defaults
    if len(events.watches) == 0:
        raise DataError(events.sources.get("watches", "watches"), "no watches to build examples")
    watches = order_watches(events.watches)
    windows = None
    if protocol is not None and protocol.protocol == "p3":
        windows = time_windows(watches["timestamp"].to_numpy(), protocol.p3_window_days,
                               protocol.p3_window_share)
    roles = watch_roles(watches["user_id"].to_numpy(), watches["timestamp"].to_numpy(), windows)
    check_held_out(roles, windows, events.sources.get("watches", "watches"))
    train_mask = roles == TRAIN
    end_of_training = int(watches["timestamp"].to_numpy()[train_mask].max())
    sets = examples_of_users(watches, roles, events.searches, events.users.set_index("user_id"),
                             events.videos["video_id"].to_numpy(dtype=object), end_of_training,
                             config, windows, progress)
    if len(sets["train"]) == 0:
        raise DataError(events.sources.get("watches", "watches"),
                        f"no training examples: no user has more than examples.min_history="
                        f"{config.min_history} training watches")
    return CandidateExamples(
        train=sets["train"],
        validation=sets["validation"],
        test=sets["test"],
        train_watches=watches.loc[train_mask].reset_index(drop=True),
        end_of_training=end_of_training,
        windows=windows,
        window_queries=None if windows is None else {name: sets[name] for name in WINDOW_SPLITS},
    )


def examples_of_users(watches: pd.DataFrame, roles: np.ndarray, searches: pd.DataFrame,
                      users: pd.DataFrame, video_vocab: np.ndarray, end_of_training: int,
                      config: ExampleConfig, windows: TimeWindows | None = None,
                      progress: Callable[[int, int], None] | None = None
                      ) -> dict[str, ExampleSet]:
    """The examples of whole users, by split: every user of the local driver, or one batch of
    users of the Beam driver (`tfrec.features.beam_driver`); each user's by `user_examples`.

    Args:
      watches: [n] rows in `order_watches` order (users contiguous): user_id, video_id,
        timestamp and the other watch columns; every watch of each of its users.
      roles: [n] int8 role of each watch (`tfrec.features.split.watch_roles`).
      searches: the searches table's rows of (at least) these users.
      users: the users table indexed by user_id, holding (at least) these users.
      video_vocab: [V] video ids holding every watched one (the integer codes' vocabulary).
      end_of_training: int64 seconds, the end of the whole data set's training window.
      windows: the P3 TimeWindows, or None.
    Returns:
      {split: ExampleSet} of "train" and of every held-out split some user has rows in
      (`SPLITS`), the columns of every registered tower feature, users in their row order.
    """
    codes = pd.Index(video_vocab).get_indexer(watches["video_id"])
    times = watches["timestamp"].to_numpy(np.int64)
    user_ids = watches["user_id"].to_numpy()
    user_searches, token_vocab = encode_searches(searches)
    features = registered_tower_features()
    # The watches' other columns (watch_time, ...), sliced per user like the ids and times.
    other_columns = {c: watches[c].to_numpy() for c in watches.columns
                     if c not in ("user_id", "video_id", "timestamp")}
    parts: dict[str, list[dict[str, Column]]] = {name: [] for name in SPLITS}
    starts, ends = user_bounds(user_ids)
    for i, (start, end) in enumerate(zip(starts, ends)):
        user = user_ids[start]
        user_parts = user_examples(user, codes[start:end], times[start:end], roles[start:end],
                                   end_of_training, config, user_searches.get(user),
                                   {c: values[start:end] for c, values in other_columns.items()},
                                   features, windows)
        for name, columns in user_parts.items():
            parts[name].append(columns)
        if progress and (i % 1000 == 0 or i == len(starts) - 1):
            progress(i + 1, len(starts))
    vocabularies = {"video_id": video_vocab, "search_token": token_vocab}
    return {name: decode_user_columns(ExampleSet.concat(split_parts).columns, vocabularies,
                                      users, features)
            for name, split_parts in parts.items() if split_parts}
