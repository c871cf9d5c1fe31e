"""Where the pipeline's events come from: the configured source's tables, the simulator's
ground truth, and the corpus the stages rank."""
import functools
import typing

import numpy as np

from tfrec.config import DataConfig
from tfrec.data import fetch, movielens, schema
from tfrec.data.schema import EventTables
from tfrec.stages import StageContext


@functools.lru_cache(maxsize=2)
def simulated_world(data_config: DataConfig) -> typing.Any:
    """The simulator World behind the events (its ground truth), or None for logged data.
    Built once per data config (stages share it)."""
    if data_config.format != "simulator":
        return None
    from tfrec.data.simulator import build_world, preset
    return build_world(preset(data_config.simulator.preset), data_config.simulator.seed)


def load_events(data_config: DataConfig,
                log: typing.Callable[[str], None] = print) -> EventTables:
    """EventTables for a DataConfig (fetching MovieLens-100K into the cache when no path is set)."""
    fmt, path = data_config.format, data_config.path
    if fmt == "recbole":
        if path is None:
            if data_config.source not in fetch.DATASETS:
                raise ValueError(f"data.source {data_config.source!r} cannot be fetched; set "
                                 f"data.path (fetchable: {fetch.DATASETS})")
            path = fetch.fetch_movielens_100k(data_config.cache_dir, log=log)
        return movielens.read_recbole(path)
    if fmt in ("grouplens", "events", "tfds"):
        # The config's rules require these; a config built in Python may skip them.
        where = data_config.tfds_data_dir if fmt == "tfds" else path
        if where is None:
            key = "tfds_data_dir" if fmt == "tfds" else "path"
            raise ValueError(f"data.format {fmt!r} needs data.{key}")
        if fmt == "grouplens":
            return movielens.read_grouplens(where)
        if fmt == "events":
            return schema.read_events(where)
        from tfrec.data import tfds_source
        return tfds_source.read_tfds_movielens(where)
    if fmt == "simulator":
        from tfrec.data.simulator import preset, simulate
        return simulate(preset(data_config.simulator.preset), data_config.simulator.seed)[1]
    raise ValueError(f"unknown data.format {fmt!r}")


def corpus(ctx: StageContext) -> np.ndarray:
    """[V] video ids of the events stage's videos table, in its row order (the model's rows)."""
    return ctx.inputs["events"].videos["video_id"].to_numpy()
