"""Simulated logs -> the event tables every source produces (in memory, or Parquet on disk)."""
import dataclasses
import json
import os
import shutil
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from tfrec.data.schema import TABLES, EventTables
from tfrec.data.simulator.behaviour import DayLogs
from tfrec.data.simulator.config import SimulatorConfig
from tfrec.data.simulator.world import (AGE_BUCKETS, DEVICES, GENDERS, LANGUAGES, World,
                                        build_world, topic_names, topic_tokens)

WORLD_FILE = "simulation.json"
# Everything `write_simulation` writes; only these are ever replaced or removed in a folder.
SIMULATION_FILES = (*(f"{t}.parquet" for t in TABLES), WORLD_FILE)


def user_ids(n: int) -> np.ndarray:
    return np.array([f"u{i}" for i in range(n)], dtype=object)


def video_ids(n: int) -> np.ndarray:
    return np.array([f"v{j}" for j in range(n)], dtype=object)


def users_table(world: World) -> pd.DataFrame:
    return pd.DataFrame({
        "user_id": user_ids(world.config.num_users),
        "age": np.asarray(AGE_BUCKETS, dtype=object)[world.user_age],
        "gender": np.asarray(GENDERS, dtype=object)[world.user_gender],
        "country": np.asarray(world.country_names, dtype=object)[world.user_country],
        "device": np.asarray(DEVICES, dtype=object)[world.user_device],
        "language": np.asarray(LANGUAGES, dtype=object)[world.user_language],
    })


def videos_table(world: World) -> pd.DataFrame:
    c = world.config
    n = c.num_videos
    names = np.asarray(topic_names(c.num_topics), dtype=object)
    tokens = np.asarray(topic_tokens(c.num_topics, c.tokens_per_topic), dtype=object)
    words = tokens[world.video_topic, np.arange(n) % c.tokens_per_topic]
    return pd.DataFrame({
        "video_id": video_ids(n),
        "upload_timestamp": world.upload,
        "title": [f"{w} #{j}" for j, w in enumerate(words)],
        "language": np.asarray(LANGUAGES, dtype=object)[world.video_language],
        "channel": np.char.add("c", world.video_channel.astype(str)).astype(object),
        "duration": world.duration.astype(np.float64),
        "topic": names[world.video_topic],
    })


def log_tables(logs: DayLogs, users: np.ndarray, videos: np.ndarray
               ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """DayLogs -> (impressions, watches, searches) DataFrames with string ids."""
    impressions = pd.DataFrame({
        "user_id": users[logs.imp_user], "video_id": videos[logs.imp_video],
        "timestamp": logs.imp_time.astype(np.int64),
        "position": logs.imp_position.astype(np.int64),
        "clicked": logs.imp_clicked.astype(np.int64),
        "watch_time": logs.imp_watch_time.astype(np.float64),
        "true_click_probability": logs.imp_click_probability.astype(np.float64),
        "true_expected_watch_time": logs.imp_expected_watch_time.astype(np.float64),
    })
    watches = pd.DataFrame({
        "user_id": users[logs.watch_user], "video_id": videos[logs.watch_video],
        "timestamp": logs.watch_time.astype(np.int64),
        "watch_time": logs.watch_seconds.astype(np.float64),
    })
    searches = pd.DataFrame({
        "user_id": users[logs.search_user], "timestamp": logs.search_time.astype(np.int64),
        "query": logs.search_query,
    })
    return impressions, watches, searches


def event_tables(world: World, logs: DayLogs) -> EventTables:
    """EventTables of a whole simulation (valid by construction: ids come from the world)."""
    users, videos = users_table(world), videos_table(world)
    impressions, watches, searches = log_tables(
        logs, users["user_id"].to_numpy(), videos["video_id"].to_numpy())
    return EventTables(watches=watches, users=users, videos=videos, impressions=impressions,
                       searches=searches, sources={t: "simulator" for t in
                                                   ("watches", "users", "videos", "impressions",
                                                    "searches")})


def world_description(world: World) -> dict[str, Any]:
    """What `load_world` needs to rebuild the world (and its ground truth) exactly."""
    return {"seed": world.seed, "config": dataclasses.asdict(world.config)}


def load_world(directory: str) -> World:
    """The World of a simulation written by `write_simulation` (ground truth for evaluation)."""
    path = os.path.join(directory, WORLD_FILE)
    with open(path) as f:
        data = json.load(f)
    fields = {f.name for f in dataclasses.fields(SimulatorConfig)}
    config = data.get("config", {})
    unknown = sorted(set(config) - fields)
    if unknown:
        raise ValueError(f"{path}: unknown simulator settings {unknown}")
    if "source_mix" in config:
        config["source_mix"] = tuple(config["source_mix"])
    return build_world(SimulatorConfig(**config), int(data["seed"]))


class StreamingTables:
    """Parquet writers for the log tables, fed one day at a time (memory stays one day's)."""

    def __init__(self, directory: str, users: np.ndarray, videos: np.ndarray) -> None:
        self.directory, self.users, self.videos = directory, users, videos
        self.writers: dict[str, pq.ParquetWriter] = {}

    def write(self, logs: DayLogs) -> None:
        for name, df in zip(("impressions", "watches", "searches"),
                            log_tables(logs, self.users, self.videos)):
            if len(df) == 0:  # a quiet day: its empty string columns would be typed null, which
                continue      # the writer (typed by the first day with rows) refuses
            table = pa.Table.from_pandas(df, preserve_index=False)
            if name not in self.writers:
                self.writers[name] = pq.ParquetWriter(
                    os.path.join(self.directory, f"{name}.parquet"), table.schema)
            self.writers[name].write_table(table)

    def close(self) -> None:
        for writer in self.writers.values():
            writer.close()


def output_folder_problem(directory: str) -> str | None:
    """Why `directory` cannot take a simulation's tables, or None when it can.

    It can when it does not exist, is empty, or holds a previous simulation (its simulation.json):
    then only the simulator's own files (SIMULATION_FILES) are replaced. Any other folder with
    files in it is refused, so a simulation never overwrites someone's real event tables.
    """
    if os.path.exists(directory) and not os.path.isdir(directory):
        return "is a file, not a folder"
    if os.path.isdir(directory) and os.listdir(directory) and \
            not os.path.exists(os.path.join(directory, WORLD_FILE)):
        return (f"is a folder with other files and no {WORLD_FILE} (not a previous simulation); "
                "choose a new or empty folder")
    return None


def write_simulation(world: World, days: Iterable[tuple[int, DayLogs]], directory: str
                     ) -> dict[str, int]:
    """Write the event tables of `days` (an iterable of (day, DayLogs)) under `directory`.

    Files appear whole: everything is written to a sibling temporary folder first, then moved in;
    simulator files of an earlier simulation that this one did not write are removed.
    Returns row counts per table.
    Raises:
      ValueError: `directory` is a file, or a non-empty folder that is not a previous
        simulation's (see `output_folder_problem`).
    """
    problem = output_folder_problem(directory)
    if problem:
        raise ValueError(f"{directory} {problem}")
    directory = os.path.abspath(directory)
    tmp = directory.rstrip("/") + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    users, videos = users_table(world), videos_table(world)
    users.to_parquet(os.path.join(tmp, "users.parquet"), index=False)
    videos.to_parquet(os.path.join(tmp, "videos.parquet"), index=False)
    stream = StreamingTables(tmp, users["user_id"].to_numpy(), videos["video_id"].to_numpy())
    counts = {"impressions": 0, "watches": 0, "searches": 0}
    try:
        for _, logs in days:
            stream.write(logs)
            counts["impressions"] += len(logs.imp_user)
            counts["watches"] += len(logs.watch_user)
            counts["searches"] += len(logs.search_user)
    finally:
        stream.close()
    counts.update(users=len(users), videos=len(videos))
    with open(os.path.join(tmp, WORLD_FILE), "w") as f:
        json.dump({**world_description(world), "counts": counts}, f, indent=2)
    os.makedirs(directory, exist_ok=True)
    written = sorted(os.listdir(tmp))
    for name in written:
        os.replace(os.path.join(tmp, name), os.path.join(directory, name))
    for name in set(SIMULATION_FILES) - set(written):  # e.g. a searches table of an older run
        if os.path.exists(os.path.join(directory, name)):
            os.remove(os.path.join(directory, name))
    os.rmdir(tmp)
    return counts
