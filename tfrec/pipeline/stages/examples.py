"""The examples stage: next-watch examples (train, validation, test and, under P3, the windows'
queries) and the training watches, as Parquet in runs/<name>/examples/; with `examples.shards`
N > 0, the training examples also as N TFRecord shards and their facts file in shards/, which
candidate generation streams.

With `examples.driver: beam` an Apache Beam pipeline (`tfrec.features.beam_driver`) reads the
events stage's Parquet tables and writes every split as TFRecord shards with its facts file in
shards/ (train in max(1, examples.shards) files); the stage loads the held-out splits (and the
training examples, which in-memory training and the ranker's page sample read) back from them,
in the local driver's row order, so every later stage sees what the local driver gives."""
import json
import os
import time
import typing

import pandas as pd

from tfrec.features.example_records import write_split
from tfrec.features.example_set import ExampleSet
from tfrec.features.local_driver import CandidateExamples, build_candidate_examples
from tfrec.pipeline.registry import register_stage
from tfrec.progress import progress_bar, progress_callback
from tfrec.stages import Stage, StageContext

SPLITS = ("train", "validation", "test")
WINDOWS = ("validation_window", "test_window")  # P3 pages of sources without impressions
SHARDS = "shards"  # the folder of the training shards inside the stage folder
# The evaluation keys that decide the held-out split (so the examples stage's cache key).
EXAMPLE_SPLIT = ("evaluation.protocol", "evaluation.p3_window_days", "evaluation.p3_window_share")


def run_beam_examples(ctx: StageContext) -> dict[str, typing.Any]:
    """The examples stage on the Beam driver: shards and facts in shards/, training watches."""
    from tfrec.features.beam_driver import TRAIN_WATCHES, build_candidate_examples_beam
    from tfrec.features.ordering import order_watches
    start = time.perf_counter()
    config = ctx.config.examples
    built = build_candidate_examples_beam(ctx.run_path("events"), ctx.path(SHARDS), config,
                                          ctx.config.evaluation, num_shards=max(1, config.shards))
    seconds = time.perf_counter() - start
    # In the local driver's order (the popularity stage and cross-fitting read it as a table).
    beam_watches = ctx.path(SHARDS, f"{TRAIN_WATCHES}.parquet")
    order_watches(pd.read_parquet(beam_watches)).to_parquet(ctx.path("train_watches.parquet"),
                                                            index=False)
    os.remove(beam_watches)
    ctx.log(f"  {built.counts()} (Beam, {config.beam.runner})"
            + (f", P3 windows {built.windows.to_dict()}" if built.windows else ""))
    train = built.facts["train"]
    return {"examples": {**built.counts(), "protocol": ctx.config.evaluation.protocol,
                         "end_of_training": built.end_of_training,
                         "p3_windows": built.windows.to_dict() if built.windows else None,
                         "build_seconds": round(seconds, 3), "driver": "beam",
                         "shard_bytes": {split: f.bytes for split, f in built.facts.items()},
                         "train_shards": {"files": len(train.files), "bytes": train.bytes}
                         if config.shards else None}}


def run_examples(ctx: StageContext) -> dict[str, typing.Any]:
    if ctx.config.examples.driver == "beam":
        return run_beam_examples(ctx)
    events = ctx.inputs["events"]
    start = time.perf_counter()
    with progress_bar(desc="users", enabled=ctx.progress, leave=False, unit="user") as bar:
        examples = build_candidate_examples(events, ctx.config.examples,
                                            progress=progress_callback(bar),
                                            protocol=ctx.config.evaluation)
    seconds = time.perf_counter() - start
    for split in SPLITS:
        getattr(examples, split).to_parquet(ctx.path(f"{split}.parquet"))
    examples.train_watches.to_parquet(ctx.path("train_watches.parquet"), index=False)
    for name, queries in (examples.window_queries or {}).items():
        queries.to_parquet(ctx.path(f"{name}.parquet"))
    shards = None
    if ctx.config.examples.shards:
        facts = write_split(examples.train, ctx.path(SHARDS), "train", ctx.config.examples.shards)
        shards = {"files": len(facts.files), "bytes": facts.bytes}
    ctx.log(f"  {examples.counts()}" + (f", P3 windows {examples.windows.to_dict()}"
                                        if examples.windows else ""))
    windows = examples.windows.to_dict() if examples.windows else None
    return {"examples": {**examples.counts(), "protocol": ctx.config.evaluation.protocol,
                         "end_of_training": examples.end_of_training, "p3_windows": windows,
                         "build_seconds": round(seconds, 3), "train_shards": shards}}


def load_examples(ctx: StageContext) -> CandidateExamples:
    from tfrec.features.split import TimeWindows
    with open(ctx.path("stage.json")) as f:
        facts = json.load(f)["metrics"]["examples"]
    if facts.get("driver") == "beam":
        from tfrec.features.beam_driver import read_split

        def read(split: str) -> ExampleSet:
            return read_split(ctx.path(SHARDS), split)
    else:
        def read(split: str) -> ExampleSet:
            return ExampleSet.from_parquet(ctx.path(f"{split}.parquet"))
    return CandidateExamples(
        **{split: read(split) for split in SPLITS},
        train_watches=pd.read_parquet(ctx.path("train_watches.parquet")),
        end_of_training=facts["end_of_training"],
        windows=TimeWindows(**facts["p3_windows"]) if facts.get("p3_windows") else None,
        window_queries={name: read(name) for name in WINDOWS}
        if facts.get("p3_windows") else None,
        train_shards=ctx.path(SHARDS) if facts.get("train_shards") else None)


STAGE = register_stage(Stage("examples", run_examples, load_examples, depends_on=("events",),
                             config_sections=("examples", *EXAMPLE_SPLIT), version=4, rank=20))
