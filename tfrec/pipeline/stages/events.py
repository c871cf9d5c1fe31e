"""The events stage: the source's event tables, validated, as Parquet in runs/<name>/events/."""
import os
import typing

from tfrec.config import PipelineConfig
from tfrec.data import schema
from tfrec.data.schema import EventTables
from tfrec.pipeline.data_source import load_events
from tfrec.pipeline.registry import register_stage
from tfrec.stages import Stage, StageContext, fingerprint_files


def run_events(ctx: StageContext) -> dict[str, typing.Any]:
    events = load_events(ctx.config.data, log=ctx.log)
    schema.write_events(events, ctx.out)
    ctx.log(f"  {events.counts()}")
    return {"data": {"source": ctx.config.data.source, "format": ctx.config.data.format,
                     **events.counts(), "dropped_duplicates": events.dropped_duplicates}}


def events_input_files(config: PipelineConfig) -> list | None:
    """Fingerprint of the files the events stage reads: the data folder (or the TFDS data_dir).
    Fetched MovieLens is pinned by its sha256 checksums and the simulator by its config, so they
    need none (and a first fetch does not change the key)."""
    data = config.data
    folder = data.tfds_data_dir if data.format == "tfds" else data.path
    return fingerprint_files(os.path.abspath(folder)) if folder else None


def load_events_stage(ctx: StageContext) -> EventTables:
    return schema.read_events(ctx.out)


STAGE = register_stage(Stage("events", run_events, load_events_stage, config_sections=("data",),
                             input_files=events_input_files, rank=10))
