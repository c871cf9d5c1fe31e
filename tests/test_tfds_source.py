import numpy as np
import pandas as pd
import pytest

from movielens_fixture import write_grouplens
from tfrec.config import ExampleConfig
from tfrec.data.errors import DataError
from tfrec.data.movielens import read_grouplens, read_recbole
from tfrec.data.tfds_source import read_tfds_movielens
from tfrec.features.local_driver import build_candidate_examples

tfds_fixture = pytest.importorskip("tfds_fixture")


def _sorted(df, keys):
    return df.sort_values(keys, kind="stable").reset_index(drop=True)


def _assert_same_events(a, b):
    keys = ["user_id", "video_id", "timestamp"]
    pd.testing.assert_frame_equal(_sorted(a.watches, keys), _sorted(b.watches, keys))
    for name, key in (("users", "user_id"), ("videos", "video_id")):
        pd.testing.assert_frame_equal(_sorted(getattr(a, name), [key]),
                                      _sorted(getattr(b, name), [key]))


def _assert_same_examples(a, b):
    ea, eb = (build_candidate_examples(e, ExampleConfig(max_examples_per_user=20)) for e in (a, b))
    for split in ("train", "validation", "test"):
        sa, sb = getattr(ea, split), getattr(eb, split)
        for name, col in sa.columns.items():
            other = sb[name]
            if hasattr(col, "values"):
                assert np.array_equal(col.values, other.values) and \
                       np.array_equal(col.lengths, other.lengths), (split, name)
            else:
                assert np.array_equal(col, other), (split, name)


def test_tfds_prepared_data_gives_the_same_events_and_examples(tmp_path):
    folder = write_grouplens(tmp_path / "gl")
    data_dir = tfds_fixture.prepare_tfds_movielens(folder, tmp_path / "tfds")
    from_tfds = read_tfds_movielens(str(data_dir))
    from_files = read_grouplens(folder)
    _assert_same_events(from_tfds, from_files)
    _assert_same_examples(from_tfds, from_files)


def test_unprepared_data_dir_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="is not prepared in this data_dir"):
        read_tfds_movielens(str(tmp_path))


@pytest.mark.slow
def test_full_movielens_tfds_matches_recbole(ml100k_dir, tmp_path):
    folder = tfds_fixture.recbole_to_grouplens(ml100k_dir, tmp_path / "gl")
    data_dir = tfds_fixture.prepare_tfds_movielens(folder, tmp_path / "tfds")
    a, b = read_tfds_movielens(str(data_dir)), read_recbole(ml100k_dir)
    assert a.counts() == b.counts()
    _assert_same_events(a, b)
    _assert_same_examples(a, b)
