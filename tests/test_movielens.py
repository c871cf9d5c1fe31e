import os

import pandas as pd
import pytest

from movielens_fixture import RATINGS, write_grouplens, write_recbole
from tfrec.data.errors import DataError
from tfrec.data.movielens import normalise_title, read_grouplens, read_recbole
from tfrec.data.schema import read_events, write_events


def test_grouplens_and_recbole_give_identical_event_tables(tmp_path):
    a = read_grouplens(write_grouplens(tmp_path / "gl"))
    b = read_recbole(write_recbole(tmp_path / "rb"))
    for name in ("watches", "users", "videos", "impressions", "searches"):
        pd.testing.assert_frame_equal(getattr(a, name), getattr(b, name), check_dtype=True)
    assert a.counts() == b.counts() == {"watches": 11, "impressions": 0, "searches": 0,
                                        "users": 3, "videos": 4}
    assert a.dropped_duplicates["watches"] == 1
    assert list(a.videos["title"]) == ["Toy Story", "The Deadly Cure", "Seven (Se7en)", "unknown"]
    assert a.videos["genres"].iloc[0] == "Animation|Comedy"
    assert a.watches["timestamp"].dtype == "int64" and a.watches["watch_time"].dtype == "float64"
    assert a.watches["user_id"].map(type).eq(str).all()


def test_event_parquet_round_trip(tmp_path):
    events = read_recbole(write_recbole(tmp_path / "rb"))
    write_events(events, tmp_path / "events")
    back = read_events(tmp_path / "events")
    for name in ("watches", "users", "videos"):
        pd.testing.assert_frame_equal(getattr(events, name), getattr(back, name))


@pytest.mark.parametrize("raw,expected", [
    ("Deadly Cure, The (1996)", "The Deadly Cure"), ("Toy Story (1995)", "Toy Story"),
    ("Seven (Se7en) (1995)", "Seven (Se7en)"), ("Bad Company, A", "A Bad Company"),
])
def test_title_normalisation(raw, expected):
    assert normalise_title(raw) == expected


def test_full_movielens_100k_counts(ml100k_dir):
    events = read_recbole(ml100k_dir)
    assert events.counts()["watches"] == 100_000
    assert events.watches["user_id"].nunique() == events.counts()["users"] == 943
    assert events.watches["video_id"].nunique() == events.counts()["videos"] == 1682
    assert set(events.watches["watch_time"].unique()) == {1.0, 2.0, 3.0, 4.0, 5.0}


# ---- bad input: each error names the file, the line and the problem ----

def _corrupt(path, line_no, new_line):
    lines = open(path).read().splitlines()
    lines[line_no - 1] = new_line
    open(path, "w").write("\n".join(lines) + "\n")


def test_missing_column(tmp_path):
    folder = write_recbole(tmp_path)
    path = os.path.join(folder, "ml-100k.inter")
    _corrupt(path, 1, "user_id:token\titem_id:token\trating:float\twhen:float")
    with pytest.raises(DataError, match=r"ml-100k.inter: missing column\(s\) \['timestamp'\]"):
        read_recbole(folder)


def test_non_numeric_timestamp(tmp_path):
    folder = write_grouplens(tmp_path)
    _corrupt(os.path.join(folder, "u.data"), 3, "1\t30\t4\tyesterday")
    with pytest.raises(DataError, match=r"u.data, line 3: column 'timestamp' is not a number: "
                                        r"'yesterday'"):
        read_grouplens(folder)


@pytest.mark.parametrize("value,problem", [("nan", "is not a number: 'nan'"), ("", "is missing"),
                                           ("-2", "is negative: '-2'")])
def test_bad_watch_time(tmp_path, value, problem):
    folder = write_recbole(tmp_path)
    _corrupt(os.path.join(folder, "ml-100k.inter"), 4, f"1\t30\t{value}\t881251000")
    with pytest.raises(DataError) as err:
        read_recbole(folder)
    assert "ml-100k.inter, line 4" in str(err.value)
    assert f"column 'watch_time' {problem}" in str(err.value)


def test_empty_file(tmp_path):
    folder = write_grouplens(tmp_path)
    open(os.path.join(folder, "u.data"), "w").close()
    with pytest.raises(DataError, match=r"u.data: the file is empty"):
        read_grouplens(folder)


def test_header_only_file_is_empty(tmp_path):
    folder = write_recbole(tmp_path)
    open(os.path.join(folder, "ml-100k.inter"), "w").write(
        "user_id:token\titem_id:token\trating:float\ttimestamp:float\n")
    with pytest.raises(DataError, match=r"ml-100k.inter: no rows"):
        read_recbole(folder)


def test_unknown_video_id_in_watches(tmp_path):
    ratings = RATINGS[:5] + [("2", "999", 4, 891717900)] + RATINGS[5:]
    folder = write_grouplens(tmp_path, ratings)
    with pytest.raises(DataError, match=r"u.data, line 6: unknown video_id '999'"):
        read_grouplens(folder)


def test_conflicting_duplicate_ids(tmp_path):
    folder = write_grouplens(tmp_path)
    with open(os.path.join(folder, "u.user"), "a") as f:
        f.write("1|99|F|artist|00000\n")
    with pytest.raises(DataError, match=r"u.user: user_id '1' appears twice"):
        read_grouplens(folder)


def test_missing_files(tmp_path):
    with pytest.raises(DataError, match=r"missing file\(s\)"):
        read_grouplens(tmp_path)
