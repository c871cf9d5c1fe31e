"""Bad input to the data sources and the small commands ends in one clear line, not a traceback.

Every case runs through the real CLI (`tfrec.cli.main` in-process; one also as a subprocess, to
prove nothing else reaches stderr) and checks the exact message, the exit code and that no
traceback is printed.
"""
import dataclasses
import os
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from conftest import small_candidate_generator, three_taste_watches
from movielens_fixture import write_grouplens, write_recbole
from tfrec import cli
from tfrec.data.schema import coerce_table, write_events

K = 5  # the exports' k
H = 5
QUIET = dict(log=lambda *_: None)


def _ranker(events, video_ids, base):
    """Export a tiny ranker (video id + history, one epoch) trained on made-up pages: each watch
    shown at position 1 next to an unclicked video at position 2. Returns events with them."""
    from tfrec.config import RankingConfig
    from tfrec.features.ranking_examples import build_ranking_examples, split_by_time
    from tfrec.models.ranking_training import ranking_features, train_ranker
    from tfrec.serving.ranker_export import export_ranker
    w = events.watches
    next_video = dict(zip(video_ids, np.roll(video_ids, -1)))  # never the watched one
    pages = pd.concat([
        w.assign(position=1, clicked=1),
        w.assign(video_id=w["video_id"].map(next_video), position=2, clicked=0, watch_time=0.0)])
    events = dataclasses.replace(events, impressions=coerce_table(
        pages.reset_index(drop=True), "impressions", "impressions")).validated()
    train, validation, _ = split_by_time(build_ranking_examples(events, max_history=H))
    config = RankingConfig(features=("video_id", "watch_history"), hidden_units=(), embedding_dim=4,
                           max_history=H, epochs=1, click_head=False, calibrate=False,
                           quantiles=4, batch_size=256)
    model, _ = train_ranker(train, validation, config, video_ids, **QUIET)
    export_ranker(model, base, ranking_features(validation, list(model.scorer.input), H),
                  {"run": "test"}, **QUIET)
    return events


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """(saved_models folder, events folder): a k=5 candidate generator, a ranker, their events."""
    from tfrec.features.dataset import padded_features
    from tfrec.serving.candidate_exports import export_candidate_generation
    watches = three_taste_watches()
    events, ex, _, model = small_candidate_generator(watches, H)
    base = str(tmp_path_factory.mktemp("saved_models"))
    events_dir = str(tmp_path_factory.mktemp("events"))
    export_candidate_generation(model, base, padded_features(ex.validation, H, 64),
                                padded_features(ex.test, H, 64),
                                {"run": "test", "events_dir": events_dir}, k=K, **QUIET)
    write_events(_ranker(events, events.videos["video_id"].to_numpy(), base), events_dir)
    return base, events_dir


def _recommend(exports, *extra):
    base, events_dir = exports
    return ["recommend", "--saved-models", base, "--events", events_dir, "--user-id", "u1",
            *extra]


def _run(argv, capsys):
    """(exit code, stdout, stderr) of `tfrec <argv>` in this process; argparse errors included."""
    try:
        rc = cli.main(argv)
    except SystemExit as stop:  # argparse rejects bad arguments with exit code 2
        rc = stop.code
    out, err = capsys.readouterr()
    return rc, out, err


def _shown(stdout):
    """How many recommendations `format_recommendations` printed ("    1.    0.123  [v3]")."""
    return sum(1 for line in stdout.splitlines() if re.match(r"^\s+\d+\.\s", line))


# ---- A: recommend -k ----

@pytest.mark.parametrize("k", ["-3", "0", "ten"])
@pytest.mark.parametrize("rerank", [(), ("--rerank",)])
def test_recommend_k_must_be_at_least_one(tmp_path, capsys, k, rerank):
    # Refused while parsing the arguments, before any export is looked for.
    nowhere = (str(tmp_path / "none"), str(tmp_path / "none"))
    rc, out, err = _run(_recommend(nowhere, "-k", k, *rerank), capsys)
    assert rc == 2 and out == ""
    assert f"argument -k: must be an integer >= 1, got '{k}'" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("rerank", [(), ("--rerank",)])
def test_recommend_k_above_the_exports_says_so_and_shows_what_there_is(exports, capsys, rerank):
    rc, out, err = _run(_recommend(exports, "-k", "500", *rerank), capsys)
    assert rc == 0, err
    assert err == f"tfrec: note: -k 500 is above the export's k={K}; showing {K}\n"
    assert f"top {K}:" in out and _shown(out) == K
    rc, out, err = _run(_recommend(exports, "-k", str(K - 2), *rerank), capsys)
    assert rc == 0 and err == "" and _shown(out) == K - 2


# ---- B: a corrupt or truncated Parquet table ----

def _damage(path, how):
    data = open(path, "rb").read()
    if how == "truncated":
        data = data[:len(data) // 2]
    else:  # bytes of the data pages overwritten; the footer (the file's index) intact
        data = data[:8] + bytes(len(data) // 2) + data[8 + len(data) // 2:]
    open(path, "wb").write(data)


def _events_config(tmp_path, how):
    events = tmp_path / "events"
    write_events(_tiny_events(), str(events))
    _damage(str(events / "watches.parquet"), how)
    config = tmp_path / "c.yaml"
    config.write_text(f"name: bad\ndata:\n  format: events\n  path: {events}\n")
    return str(config), str(events / "watches.parquet")


def _tiny_events():
    from conftest import make_events
    return make_events([(f"u{u}", f"v{v}", 10 * u + v, 1.0 + v) for u in range(20)
                        for v in range(20)])


# pyarrow's own reason ends the line; its wording is pyarrow's, so only its presence is checked.
PARQUET = "not a readable Parquet file (truncated or corrupt: "


@pytest.mark.parametrize("how", ["truncated", "corrupt"])
def test_damaged_parquet_names_the_file(tmp_path, capsys, how):
    config, path = _events_config(tmp_path, how)
    rc, _, err = _run(["run", config, "--runs-dir", str(tmp_path / "runs"), "--quiet"], capsys)
    assert rc == 2 and "Traceback" not in err
    assert err.startswith(f"tfrec: error: {path}: {PARQUET}") and err.endswith(")\n")
    assert len(err.splitlines()) == 1 and len(err) < 250, err


def test_recommend_reads_a_damaged_events_folder_the_same_way(exports, tmp_path, capsys):
    events = tmp_path / "events"
    write_events(_tiny_events(), str(events))
    _damage(str(events / "users.parquet"), "truncated")
    argv = _recommend(exports)
    argv[argv.index("--events") + 1] = str(events)
    rc, _, err = _run(argv, capsys)
    assert rc == 2 and err.startswith(f"tfrec: error: {events / 'users.parquet'}: {PARQUET}")
    assert len(err.splitlines()) == 1


# ---- C: a MovieLens file with too many or too few fields ----

def _movielens_case(tmp_path, fmt, name, line_no, change):
    folder = str(tmp_path / fmt)
    (write_grouplens if fmt == "grouplens" else write_recbole)(folder)
    path = os.path.join(folder, name)
    lines = open(path, encoding="latin-1").read().splitlines()
    lines[line_no - 1] = change(lines[line_no - 1])
    open(path, "w", encoding="latin-1").write("\n".join(lines) + "\n")
    config = tmp_path / "c.yaml"
    config.write_text(f"name: bad\ndata:\n  format: {fmt}\n  path: {folder}\n")
    return str(config), path


@pytest.mark.parametrize("fmt,name,line_no,change,problem", [
    ("grouplens", "u.data", 3, lambda s: s + "\t7",
     "expected 4 tab-separated fields (user id, item id, rating, timestamp), found 5"),
    ("grouplens", "u.data", 1, lambda s: s.rsplit("\t", 1)[0],
     "expected 4 tab-separated fields (user id, item id, rating, timestamp), found 3"),
    ("grouplens", "u.user", 2, lambda s: s + "|x",
     "expected 5 '|'-separated fields (user id, age, gender, occupation, zip code), found 6"),
    ("grouplens", "u.item", 4, lambda s: s.rsplit("|", 1)[0],
     "expected 24 '|'-separated fields (movie id, title, release date, video release date, "
     "IMDb URL, 19 genre flags), found 23"),
    ("recbole", "ml-100k.inter", 5, lambda s: s + "\t7",
     "expected 4 tab-separated fields (as in the header: user_id, item_id, rating, timestamp), "
     "found 5"),
    ("recbole", "ml-100k.user", 3, lambda s: s.rsplit("\t", 1)[0],
     "expected 5 tab-separated fields (as in the header: user_id, age, gender, occupation, "
     "zip_code), found 4"),
    ("recbole", "ml-100k.item", 2, lambda s: s + "\tx",
     "expected 4 tab-separated fields (as in the header: item_id, movie_title, release_year, "
     "class), found 5"),
])
def test_movielens_field_count_names_the_file_and_line(tmp_path, capsys, fmt, name, line_no,
                                                        change, problem):
    config, path = _movielens_case(tmp_path, fmt, name, line_no, change)
    rc, _, err = _run(["run", config, "--runs-dir", str(tmp_path / "runs"), "--quiet"], capsys)
    assert rc == 2 and "Traceback" not in err
    assert err == f"tfrec: error: {path}, line {line_no}: {problem}\n"


def test_every_u_data_line_with_an_extra_column_is_caught_in_a_subprocess(tmp_path):
    """The reviewer's case (every line shifted: pandas made the first column the index), as a
    user runs it: nothing but the one line reaches stderr."""
    config, path = _movielens_case(tmp_path, "grouplens", "u.data", 1, lambda s: s)
    lines = open(path).read().splitlines()
    open(path, "w").write("".join(f"{line}\t0\n" for line in lines))
    out = subprocess.run([sys.executable, "-m", "tfrec.cli", "run", config, "--runs-dir",
                          str(tmp_path / "runs"), "--quiet"], capture_output=True, text=True)
    assert out.returncode == 2
    assert out.stderr == (f"tfrec: error: {path}, line 1: expected 4 tab-separated fields "
                          "(user id, item id, rating, timestamp), found 5\n")


# ---- D: data simulate --out ----

def _simulate(out, capsys):
    return _run(["data", "simulate", "--preset", "tiny", "--users", "30", "--videos", "40",
                 "--out", str(out)], capsys)


def test_simulate_out_must_be_a_folder_of_its_own(tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("mine")
    rc, _, err = _simulate(afile, capsys)
    assert rc == 2 and err == f"tfrec: error: --out {afile} is a file, not a folder\n"
    assert afile.read_text() == "mine"
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "watches.parquet").write_text("someone's real table")
    rc, _, err = _simulate(theirs, capsys)
    assert rc == 2 and err == (f"tfrec: error: --out {theirs} is a folder with other files and "
                               "no simulation.json (not a previous simulation); choose a new or "
                               "empty folder\n")
    assert (theirs / "watches.parquet").read_text() == "someone's real table"
    rc, _, err = _simulate(afile / "sub", capsys)
    assert rc == 2
    assert err == f"tfrec: error: --out {afile / 'sub'}: cannot write: Not a directory\n"


def test_simulate_again_replaces_only_the_simulators_files(tmp_path, capsys):
    out = tmp_path / "sim"
    assert _simulate(out, capsys)[0] == 0
    (out / "notes.txt").write_text("kept")
    rc, _, err = _simulate(out, capsys)
    assert rc == 0, err
    assert (out / "notes.txt").read_text() == "kept"
    assert sorted(os.listdir(out)) == sorted(
        ["notes.txt", "simulation.json"] + [f"{t}.parquet" for t in
                                            ("impressions", "watches", "searches", "users",
                                             "videos")])


# ---- E: data fetch into a cache folder that cannot be written ----

def test_fetch_into_a_cache_under_a_file(tmp_path, capsys):
    blocker = tmp_path / "afile"
    blocker.write_text("")
    cache = blocker / "cache"
    rc, out, err = _run(["data", "fetch", "movielens-100k", "--cache-dir", str(cache)], capsys)
    assert rc == 2 and "Traceback" not in err
    assert err == (f"tfrec: error: cannot write the cache folder {cache}: not a directory; set "
                   "--cache-dir or $TFREC_CACHE\n")
    assert "downloading" not in out  # it fails before going to PyPI


def test_fetch_into_a_read_only_cache(tmp_path, capsys):
    """A read-only file system (root can write a chmod-ed folder, not this)."""
    ro = tmp_path / "ro"
    ro.mkdir()
    mount = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(ro)],
                           capture_output=True, text=True)
    if mount.returncode != 0:
        pytest.skip(f"cannot mount a read-only tmpfs here: {mount.stderr.strip()}")
    try:
        rc, _, err = _run(["data", "fetch", "movielens-100k", "--cache-dir", str(ro / "cache")],
                          capsys)
    finally:
        subprocess.run(["umount", str(ro)], check=True)
    assert rc == 2 and err == (f"tfrec: error: cannot write the cache folder {ro / 'cache'}: "
                               "read-only file system; set --cache-dir or $TFREC_CACHE\n")
