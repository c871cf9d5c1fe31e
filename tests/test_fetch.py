import zipfile

import pytest

from tfrec.data.fetch import RECBOLE_MEMBER_DIR, SHA256, FetchError, extract_movielens_100k


def _fake_wheel(path, content=b"tampered"):
    with zipfile.ZipFile(path, "w") as zf:
        for name in SHA256:
            zf.writestr(RECBOLE_MEMBER_DIR + name, content)
    return path


def test_checksum_mismatch_is_refused_and_leaves_nothing(tmp_path):
    target = tmp_path / "cache" / "movielens-100k"
    with pytest.raises(FetchError, match="sha256"):
        extract_movielens_100k(_fake_wheel(tmp_path / "w.whl"), str(target))
    assert not target.exists()
    assert list((tmp_path / "cache").iterdir()) == []


def test_wheel_without_the_data_is_refused(tmp_path):
    wheel = tmp_path / "w.whl"
    zipfile.ZipFile(wheel, "w").writestr("other.txt", "x")
    with pytest.raises(FetchError, match="does not contain"):
        extract_movielens_100k(str(wheel), str(tmp_path / "out"))


def test_fetched_files_verify(ml100k_dir):
    from tfrec.data.fetch import sha256_of
    import os
    for name, digest in SHA256.items():
        assert sha256_of(os.path.join(ml100k_dir, name)) == digest
