"""The examples stage: next-watch examples (train, validation, test and, under P3, the windows'
queries) and the training watches, as Parquet in runs/<name>/examples/; with `examples.shards`
N > 0, the training examples also as N TFRecord shards and their facts file in shards/, which
candidate generation streams."""
import json
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


def run_examples(ctx: StageContext) -> dict[str, typing.Any]:
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
    return CandidateExamples(
        **{split: ExampleSet.from_parquet(ctx.path(f"{split}.parquet")) for split in SPLITS},
        train_watches=pd.read_parquet(ctx.path("train_watches.parquet")),
        end_of_training=facts["end_of_training"],
        windows=TimeWindows(**facts["p3_windows"]) if facts.get("p3_windows") else None,
        window_queries={name: ExampleSet.from_parquet(ctx.path(f"{name}.parquet"))
                        for name in WINDOWS} if facts.get("p3_windows") else None,
        train_shards=ctx.path(SHARDS) if facts.get("train_shards") else None)


STAGE = register_stage(Stage("examples", run_examples, load_examples, depends_on=("events",),
                             config_sections=("examples", *EXAMPLE_SPLIT), version=3, rank=20))
