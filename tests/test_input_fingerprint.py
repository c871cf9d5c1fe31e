"""A cached run can never be stale: the events stage's key holds a fingerprint of every input
file (size, mtime and a content hash), so editing the data in place reruns what depends on it."""
import os

import pandas as pd

from conftest import make_events
from tfrec.config import load_config
from tfrec.data.schema import write_events
from tfrec.pipeline import run_pipeline

LIGHT = """name: light
data:
  format: events
  path: {events}
candidate_generation:
  enabled: false
export:
  enabled: false
"""


def _run(config, runs):
    lines = []
    metrics = run_pipeline(config, runs_dir=str(runs), log=lines.append, report=False)
    return metrics, {line.split("]")[0][1:] for line in lines if "] running (hash" in line}


def test_editing_an_input_file_in_place_reruns_the_stages_that_read_it(tmp_path):
    watches = [(f"u{u}", f"v{(u * t) % 7}", t) for u in range(6) for t in range(6)]
    events = tmp_path / "events"
    write_events(make_events(watches, videos=[f"v{i}" for i in range(8)]), str(events))
    path = tmp_path / "light.yaml"
    path.write_text(LIGHT.format(events=events))
    config = load_config(str(path))
    first, ran = _run(config, tmp_path / "runs")
    assert ran == {"events", "examples", "popularity"}
    assert _run(config, tmp_path / "runs")[1] == set()  # unchanged files: all cached

    # Same size and mtime, other content: every test target becomes the unwatched video v7.
    table = events / "watches.parquet"
    stat = os.stat(table)
    df = pd.read_parquet(table)
    last = df.groupby("user_id")["timestamp"].transform("max") == df["timestamp"]
    df.loc[last, "video_id"] = "v7"
    df.to_parquet(table, index=False)
    os.utime(table, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    again, ran = _run(config, tmp_path / "runs")
    assert ran == {"events", "examples", "popularity"}
    assert again["popularity"]["test"] != first["popularity"]["test"]
    assert again["popularity"]["test"]["recall@1"] == 0.0  # v7 is never watched in training
