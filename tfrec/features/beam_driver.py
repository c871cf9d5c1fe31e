"""The Apache Beam driver of example building: the local driver's examples, as TFRecord shards.

The pipeline reads the events stage's Parquet tables (watches, searches, users) in batches of rows,
keys every row by user and joins the tables (CoGroupByKey), so each element holds all of one
user's events. Batches of such whole users (BatchElements) then go through the local driver's own
code: `order_watches`, `watch_roles` and `examples_of_users`, which calls the pure per-user
`tfrec.features.candidate_examples.user_examples` for each user; a user's examples depend only on
that user's events and the whole-data facts below, so how users are batched changes nothing.
What needs the whole data set comes from combiners, as side inputs or outputs:

  P3 windows        the watch timestamps' counts per second -> `time_windows_of_counts` (the
                    local driver's quantiles, bit for bit)
  end of training   the largest training timestamp (every training example's age needs it)
  per split         row count, label counts per video, the largest example age, record spec
  users             the demographic vocabularies (distinct values of each users column)

It writes into one folder: `<split>-SSSSS-of-NNNNN.tfrecord.gz` (GZIP TFRecords of
`tf.train.Example`, `tfrec.features.example_records`) and `<split>.json` (ShardFacts) for train,
validation, test (and the P3 windows' queries), `train_watches.parquet` (the training-part
watches, for the popularity stage) and `beam_facts.json` (end of training, P3 windows,
demographic vocabularies, counts). Rows within a file are in no particular order; as sets they
equal the local driver's (tests/test_beam_driver.py).
"""
from __future__ import annotations

import dataclasses
import glob
import json
import logging
import os
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import apache_beam as beam
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystem import CompressionTypes

from tfrec.config import EvaluationConfig, ExampleConfig
from tfrec.config.schema import BeamConfig
from tfrec.data.errors import DataError
from tfrec.features.beam_options import pipeline_options
from tfrec.features.candidate_examples import WINDOW_SPLITS
from tfrec.features.example_records import (SUFFIX, ShardFacts, encode_examples, max_example_age,
                                            read_example_set, read_facts, record_spec,
                                            write_facts)
from tfrec.features.example_set import Column, ExampleSet
from tfrec.features.local_driver import SPLITS, check_held_out, examples_of_users
from tfrec.features.ordering import order_watches
from tfrec.features.split import (TEST, TRAIN, VALIDATION, TimeWindows, time_windows_of_counts,
                                  user_bounds, watch_roles)

BEAM_FACTS = "beam_facts.json"
TRAIN_WATCHES = "train_watches"
# Users whose examples one call of the local driver's `examples_of_users` builds: per-call
# costs (pandas, proto encoding set-up) are then paid per batch, not per user.
USER_BATCH = 500
# Rows of pending timestamp counts a combiner holds before merging them.
COMPACT_ROWS = 1_000_000
# Tables the pipeline joins by user; what `read_events` treats as optional may be missing.
USER_TABLES = ("watches", "searches", "users")
OPTIONAL_TABLES = ("searches",)


@dataclasses.dataclass
class BeamExamples:
    """What the Beam driver wrote (all of it under `folder`).

    facts: {split: ShardFacts} of every split written; end_of_training: last training timestamp
    (s); windows: the P3 TimeWindows or None; demographic_vocabularies: {users column: sorted
    distinct values}.
    """

    folder: str
    facts: dict[str, ShardFacts]
    end_of_training: int
    windows: TimeWindows | None
    demographic_vocabularies: dict[str, list[str]]

    def counts(self) -> dict[str, int]:
        return {split: self.facts[split].count for split in ("train", "validation", "test")}


@dataclasses.dataclass
class UserBatch:
    """Whole users' joined events, a batch of them: `watches` DataFrame in `order_watches`
    order (users contiguous), `roles` [n] int8 of its rows, `searches` DataFrame (user_id,
    timestamp, query) and `users` DataFrame indexed by user_id."""

    watches: pd.DataFrame
    roles: np.ndarray
    searches: pd.DataFrame
    users: pd.DataFrame


def user_chunks(table: pa.Table) -> Iterator[tuple[str, dict[str, np.ndarray]]]:
    """(user_id, {column: [k] rows of that user}) for each user in a batch of a table's rows."""
    columns = {name: table.column(name).to_numpy(zero_copy_only=False)
               for name in table.column_names}
    users = columns["user_id"].astype(object)
    order = np.argsort(users, kind="stable")
    sorted_users = users[order]
    for start, end in zip(*user_bounds(sorted_users)):
        rows = order[start:end]
        yield str(sorted_users[start]), {name: values[rows] for name, values in columns.items()}


def _concat(chunks: Iterable[Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
    chunks = list(chunks)
    return {name: np.concatenate([c[name] for c in chunks]) for name in chunks[0]}


Counts = tuple[np.ndarray, np.ndarray]  # (distinct values [s] ascending, count of each [s])


def _merged_counts(parts: Iterable[Counts]) -> Counts:
    parts = list(parts)
    if not parts:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    seconds, index = np.unique(np.concatenate([p[0] for p in parts]), return_inverse=True)
    counts = np.zeros(len(seconds), np.int64)
    np.add.at(counts, index, np.concatenate([p[1] for p in parts]))
    return seconds, counts


class TimestampCounts(beam.CombineFn):
    """(distinct seconds [s] ascending, watches at each [s]) of batches of watch timestamps.

    The accumulator is a list of such pairs, merged only when it holds many rows: merging at
    every input would sort the whole set of seconds once per batch."""

    def create_accumulator(self) -> list[Counts]:
        return []

    def add_input(self, acc: list[Counts], timestamps: np.ndarray) -> list[Counts]:
        acc.append(np.unique(np.asarray(timestamps, np.int64), return_counts=True))
        if sum(len(part[0]) for part in acc) > COMPACT_ROWS:
            acc[:] = [_merged_counts(acc)]
        return acc

    def merge_accumulators(self, accs: Iterable[list[Counts]]) -> list[Counts]:
        return [_merged_counts(part for acc in accs for part in acc)]

    def extract_output(self, acc: list[Counts]) -> Counts:
        return _merged_counts(acc)


@dataclasses.dataclass
class SplitFacts:
    """A split's whole-data-set facts as a combiner gathers them."""

    count: int = 0
    label_counts: dict[str, int] = dataclasses.field(default_factory=dict)
    max_age: float | None = None
    spec: dict[str, dict] | None = None


class SplitFactsFn(beam.CombineFn):
    """SplitFacts of a split's per-user columns: rows, label counts, largest example age, and
    the record spec every user's columns must share."""

    def create_accumulator(self) -> SplitFacts:
        return SplitFacts()

    def add_input(self, acc: SplitFacts, columns: Mapping[str, Column]) -> SplitFacts:
        labels, counts = np.unique(np.asarray(columns["label"]).astype(str), return_counts=True)
        ages = np.asarray(columns["example_age"])
        return self._add(acc, SplitFacts(len(columns["label"]),
                                         dict(zip(labels.tolist(), counts.tolist())),
                                         float(ages.max()) if len(ages) else None,
                                         record_spec(columns)))

    @staticmethod
    def _add(acc: SplitFacts, other: SplitFacts) -> SplitFacts:
        """`acc` updated in place with `other` (O(other's labels), not O(all labels))."""
        if other.spec is not None and acc.spec is not None and other.spec != acc.spec:
            raise ValueError(f"users' example columns differ in record spec: {other.spec} vs "
                             f"{acc.spec}")
        acc.spec = acc.spec or other.spec
        acc.count += other.count
        for label, count in other.label_counts.items():
            acc.label_counts[label] = acc.label_counts.get(label, 0) + count
        if other.max_age is not None:
            acc.max_age = other.max_age if acc.max_age is None else max(acc.max_age,
                                                                        other.max_age)
        return acc

    def merge_accumulators(self, accs: Iterable[SplitFacts]) -> SplitFacts:
        accs = iter(accs)
        out = next(accs, SplitFacts())
        for acc in accs:
            self._add(out, acc)
        return out

    def extract_output(self, acc: SplitFacts) -> SplitFacts:
        return acc


class DistinctValues(beam.CombineFn):
    """{column: sorted distinct values as str} of batches of users-table rows (pyarrow)."""

    def create_accumulator(self) -> dict[str, set[str]]:
        return {}

    def add_input(self, acc: dict[str, set[str]], table: pa.Table) -> dict[str, set[str]]:
        for column in table.column_names:
            if column != "user_id":
                acc.setdefault(column, set()).update(
                    str(v) for v in table.column(column).unique().to_pylist())
        return acc

    def merge_accumulators(self, accs: Iterable[dict[str, set[str]]]) -> dict[str, set[str]]:
        out: dict[str, set[str]] = {}
        for acc in accs:
            for column, values in acc.items():
                out.setdefault(column, set()).update(values)
        return out

    def extract_output(self, acc: dict[str, set[str]]) -> dict[str, list[str]]:
        return {column: sorted(values) for column, values in acc.items()}


def joined_user(element: tuple[str, Mapping[str, list]]
                ) -> Iterator[tuple[dict[str, np.ndarray], list, dict[str, Any]]]:
    """A user's joined chunks -> (watches {column: [n]}, search chunks, users row); users
    without watches give nothing."""
    user_id, tables = element
    if not tables["watches"]:
        return
    if not tables["users"]:
        raise DataError("users", f"user {user_id!r} has watches but no row in the users table")
    profile = {name: values[0] for name, values in tables["users"][0].items()}
    yield _concat(tables["watches"]), list(tables["searches"]), profile


def user_batch(users: list[tuple[dict[str, np.ndarray], list, dict[str, Any]]],
               windows: TimeWindows | None) -> UserBatch:
    """Joined users -> a UserBatch: their watches in watch order with their roles."""
    watches = order_watches(pd.DataFrame(_concat(u[0] for u in users)))
    watches["timestamp"] = watches["timestamp"].astype(np.int64)
    roles = watch_roles(watches["user_id"].to_numpy(), watches["timestamp"].to_numpy(), windows)
    search_chunks = [chunk for u in users for chunk in u[1]]
    searches = pd.DataFrame(_concat(search_chunks)) if search_chunks else \
        pd.DataFrame({"user_id": [], "timestamp": np.zeros(0, np.int64), "query": []})
    profiles = pd.DataFrame([u[2] for u in users]).set_index("user_id")
    return UserBatch(watches, roles, searches, profiles)


def last_training_time(batch: UserBatch) -> Iterator[int]:
    train = batch.watches["timestamp"].to_numpy()[batch.roles == TRAIN]
    if len(train):
        yield int(train.max())


def batch_examples(batch: UserBatch, end_of_training: int | None, config: ExampleConfig,
                   windows: TimeWindows | None) -> Iterator[tuple[str, dict[str, Column]]]:
    """(split, the batch's example columns) for each split with rows: the local driver's
    `examples_of_users` on these users."""
    if end_of_training is None:  # no training watch anywhere: the driver reports it
        return
    video_vocab = np.asarray(pd.unique(batch.watches["video_id"].to_numpy()), dtype=object)
    sets = examples_of_users(batch.watches, batch.roles, batch.searches, batch.users,
                             video_vocab, end_of_training, config, windows)
    for split, examples in sets.items():
        if len(examples):
            yield split, examples.columns


def training_watches(batch: UserBatch, schema: pa.Schema) -> Iterator[pa.Table]:
    train = batch.roles == TRAIN
    if train.any():
        yield pa.Table.from_pandas(batch.watches.loc[train, schema.names], schema=schema,
                                   preserve_index=False)


class BySplit(beam.PartitionFn):
    """(split, columns) -> the split's place in SPLITS."""

    def partition_for(self, element: Any, num_partitions: int, *args: Any,
                      **kwargs: Any) -> int:
        return SPLITS.index(element[0])


def records(columns: Mapping[str, Column]) -> Iterator[bytes]:
    return encode_examples(columns, record_spec(columns))


def _table_path(events_dir: str, table: str) -> str:
    return os.path.join(events_dir, f"{table}.parquet")


def _read_table(pipeline: beam.Pipeline, events_dir: str, table: str) -> beam.PCollection:
    """An events table as a PCollection of pyarrow Tables (batches of rows); an absent
    optional table is empty."""
    path = _table_path(events_dir, table)
    if not os.path.exists(path):
        if table not in OPTIONAL_TABLES:
            raise DataError(path, f"missing {table} table")
        return pipeline | f"No{table}" >> beam.Create([])
    return pipeline | f"Read{table}" >> beam.io.ReadFromParquetBatched(path)


def build_pipeline(pipeline: beam.Pipeline, events_dir: str, folder: str,
                   config: ExampleConfig, protocol: EvaluationConfig | None,
                   num_shards: Mapping[str, int]) -> None:
    """The example-building transforms on `pipeline` (see the module docstring).

    Args:
      events_dir: the events stage's folder of `<table>.parquet`.
      folder: where every output goes.
      num_shards: {split: number of TFRecord files}.
    """
    batches = {table: _read_table(pipeline, events_dir, table) for table in USER_TABLES}
    tables = {table: rows | f"ByUser{table}" >> beam.FlatMap(user_chunks)
              for table, rows in batches.items()}
    p3 = protocol is not None and protocol.protocol == "p3"
    if p3:
        assert protocol is not None
        windows = beam.pvalue.AsSingleton(
            batches["watches"]
            | "Timestamps" >> beam.Map(lambda t: t.column("timestamp").to_numpy())
            | "TimestampCounts" >> beam.CombineGlobally(TimestampCounts())
            | "Windows" >> beam.Map(lambda c: time_windows_of_counts(
                c[0], c[1], protocol.p3_window_days, protocol.p3_window_share)))
    else:
        windows = beam.pvalue.AsSingleton(pipeline | "NoWindows" >> beam.Create([None]))
    users = (tables | "JoinByUser" >> beam.CoGroupByKey()
             | "JoinedUsers" >> beam.FlatMap(joined_user)
             | "BatchUsers" >> beam.BatchElements(min_batch_size=USER_BATCH,
                                                  max_batch_size=USER_BATCH)
             | "OrderAndRoles" >> beam.Map(user_batch, windows))
    end_of_training = beam.pvalue.AsSingleton(
        users | "LastTrainingTimes" >> beam.FlatMap(last_training_time)
        | "EndOfTraining" >> beam.CombineGlobally(lambda ts: max(ts, default=None)))
    examples = users | "Examples" >> beam.FlatMap(batch_examples, end_of_training, config,
                                                 windows)
    facts = (examples | "SplitFacts" >> beam.CombinePerKey(SplitFactsFn())
             | "FactsToDict" >> beam.Map(lambda kv: {"split": kv[0],
                                                     **dataclasses.asdict(kv[1])}))
    splits = examples | "BySplit" >> beam.Partition(BySplit(), len(SPLITS))
    for split, part in zip(SPLITS, splits):
        if split not in num_shards:
            continue
        (part | f"Records{split}" >> beam.FlatMap(lambda kv: records(kv[1]))
         | f"Write{split}" >> beam.io.WriteToTFRecord(
             os.path.join(folder, split), file_name_suffix=SUFFIX, num_shards=num_shards[split],
             compression_type=CompressionTypes.GZIP))
    schema = pq.read_schema(_table_path(events_dir, "watches"))
    schema = pa.schema([schema.field(name) for name in schema.names])  # without pandas metadata
    (users | "TrainWatches" >> beam.FlatMap(training_watches, schema)
     | "WriteTrainWatches" >> beam.io.WriteToParquetBatched(
         os.path.join(folder, TRAIN_WATCHES), schema, num_shards=1, shard_name_template="",
         file_name_suffix=".parquet"))
    vocabularies = batches["users"] | "DemographicVocabularies" >> beam.CombineGlobally(
        DistinctValues())
    summary = (facts | "AllFacts" >> beam.combiners.ToList()
               | "Summary" >> beam.Map(
                   lambda splits, end, w, vocab: {
                       "splits": splits, "end_of_training": end,
                       "p3_windows": w.to_dict() if w is not None else None,
                       "demographic_vocabularies": vocab},
                   end_of_training, windows, beam.pvalue.AsSingleton(vocabularies))
               | "SummaryJson" >> beam.Map(json.dumps))
    _ = summary | "WriteSummary" >> beam.io.WriteToText(
        os.path.join(folder, BEAM_FACTS), shard_name_template="")


def build_candidate_examples_beam(events_dir: str, folder: str, config: ExampleConfig,
                                  protocol: EvaluationConfig | None = None,
                                  num_shards: int = 1,
                                  beam_config: BeamConfig | None = None) -> BeamExamples:
    """Run the Beam pipeline over the event tables in `events_dir`, writing into `folder`.

    Args:
      events_dir: a folder of `<table>.parquet` as the events stage writes them.
      folder: the output folder (created).
      config: ExampleConfig; protocol: as in `build_candidate_examples`.
      num_shards: TFRecord files of the training split (held-out splits: one each).
      beam_config: runner and options (None: config.beam).
    Returns:
      BeamExamples; raises DataError as the local driver does when the split leaves no
      held-out target or no training example.
    """
    os.makedirs(folder, exist_ok=True)
    p3 = protocol is not None and protocol.protocol == "p3"
    shards = {split: num_shards if split == "train" else 1 for split in SPLITS
              if p3 or split not in WINDOW_SPLITS}
    options = pipeline_options(beam_config or config.beam)
    logging.getLogger("apache_beam").setLevel(logging.WARNING)  # its INFO lines per stage
    with beam.Pipeline(options=options) as pipeline:
        build_pipeline(pipeline, events_dir, folder, config, protocol, shards)
    return _finish(folder, _table_path(events_dir, "watches"), protocol)


def in_local_order(examples: ExampleSet) -> ExampleSet:
    """The rows in the local driver's order: users by id, each user's rows by position
    (watches_before); (user_id, watches_before) is unique within every split."""
    users, _ = pd.factorize(examples["user_id"], sort=True)
    return examples.take(np.lexsort((examples["watches_before"], users)))


def read_split(folder: str, split: str) -> ExampleSet:
    """A split the Beam driver wrote into `folder`, materialised in the local driver's order."""
    facts = read_facts(folder, split)
    return in_local_order(read_example_set(facts.paths(folder), facts.spec))


def _finish(folder: str, watches_source: str, protocol: EvaluationConfig | None
            ) -> BeamExamples:
    """Check the pipeline's summary as the local driver checks its split, and write each
    split's facts file beside its shards."""
    with open(os.path.join(folder, BEAM_FACTS)) as f:
        summary = json.load(f)
    windows = TimeWindows(**summary["p3_windows"]) if summary["p3_windows"] else None
    splits = {s["split"]: s for s in summary["splits"]}
    # check_held_out reads which roles occur: one watch of each split that has rows.
    present = [role for split, role in (("train", TRAIN), ("validation", VALIDATION),
                                        ("test", TEST))
               if split in splits or (split == "train" and summary["end_of_training"] is not None)]
    check_held_out(np.array(present, np.int8), windows, watches_source)
    if "train" not in splits:
        raise DataError(watches_source, "no training examples: no user has more than "
                        "examples.min_history training watches")
    facts = {}
    for split, found in splits.items():
        paths = sorted(glob.glob(os.path.join(folder, f"{split}-*-of-*{SUFFIX}")))
        facts[split] = ShardFacts(spec=found["spec"], count=found["count"],
                                  files=[os.path.basename(p) for p in paths],
                                  bytes=sum(os.path.getsize(p) for p in paths),
                                  label_counts=found["label_counts"],
                                  max_example_age_seconds=max_example_age(
                                      np.array([] if found["max_age"] is None
                                               else [found["max_age"]])))
        write_facts(folder, split, facts[split])
    return BeamExamples(folder, facts, int(summary["end_of_training"]), windows,
                        summary["demographic_vocabularies"])
