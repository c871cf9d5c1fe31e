"""`tfrec data fetch movielens-100k`: MovieLens-100K with no internet beyond PyPI.

The RecBole 1.2.1 wheel on PyPI ships ml-100k as atomic files. We `pip download --no-deps` that
wheel (never install it), extract only the three files we read, check their sha256 and move them
into the cache folder atomically, so a half-finished fetch never looks like a finished one.
"""
import contextlib
import errno
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterator

from tfrec.data.movielens import RECBOLE_FILES

RECBOLE_REQUIREMENT = "recbole==1.2.1"
RECBOLE_MEMBER_DIR = "recbole/dataset_example/ml-100k/"
SHA256 = {
    "ml-100k.inter": "4edb74e2a81178c2ba9ff381495f754f996c4aea351b1272ca36b43da0935eff",
    "ml-100k.user": "4f670007d9cfbeb9807e757209af1555b9bcc186bde25e767f67cb67c6dd5972",
    "ml-100k.item": "51d7cdf777ce5c0f5b32c1d947a4a81fe07d75e78abbe761e0cd4d0756064532",
}
DATASETS = ("movielens-100k",)
# Errors that mean "this folder cannot be written" (as opposed to a bad wheel).
WRITE_ERRNOS = (errno.EACCES, errno.EROFS, errno.EPERM, errno.ENOSPC, errno.ENOTDIR,
                errno.EEXIST)


class FetchError(RuntimeError):
    """The data could not be fetched or did not match its checksum."""


def default_cache_dir() -> str:
    """`$TFREC_CACHE`, else `~/.cache/tfrec`."""
    return os.environ.get("TFREC_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "tfrec")


def sha256_of(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@contextlib.contextmanager
def writing_cache(folder: str) -> Iterator[None]:
    """Turn an OSError meaning "`folder` cannot be written" (read-only, no permission, a file
    where a folder should be, disk full) into a one-line FetchError naming the folder and the
    two ways to choose another; other OSErrors (an unreadable wheel) pass through."""
    try:
        yield
    except OSError as err:
        if err.errno not in WRITE_ERRNOS:
            raise
        reason = (err.strerror or os.strerror(err.errno)).lower()
        raise FetchError(f"cannot write the cache folder {folder}: {reason}; "
                         "set --cache-dir or $TFREC_CACHE") from err


def _verified(folder: str) -> bool:
    return all(os.path.exists(os.path.join(folder, n)) and sha256_of(os.path.join(folder, n))
               == SHA256[n] for n in RECBOLE_FILES)


def extract_movielens_100k(wheel_path: str, folder: str) -> str:
    """Extract and verify the ml-100k files of a RecBole wheel into `folder` (atomically)."""
    parent = os.path.dirname(os.path.abspath(folder))
    with writing_cache(parent):
        os.makedirs(parent, exist_ok=True)
        staging = tempfile.mkdtemp(prefix=".fetch-", dir=parent)
    try:
        with zipfile.ZipFile(wheel_path) as wheel, writing_cache(parent):
            for name in RECBOLE_FILES:
                with wheel.open(RECBOLE_MEMBER_DIR + name) as src, \
                        open(os.path.join(staging, name), "wb") as dst:
                    shutil.copyfileobj(src, dst)
        for name in RECBOLE_FILES:
            got = sha256_of(os.path.join(staging, name))
            if got != SHA256[name]:
                raise FetchError(f"{name} from {wheel_path}: sha256 {got}, expected {SHA256[name]}")
        with writing_cache(parent):
            if os.path.isdir(folder):
                shutil.rmtree(folder)
            os.replace(staging, folder)
    except KeyError as err:
        raise FetchError(f"{wheel_path} does not contain {err}") from err
    finally:
        if os.path.isdir(staging):
            shutil.rmtree(staging)
    return folder


def fetch_movielens_100k(cache_dir: str | None = None,
                         log: Callable[[str], object] = print) -> str:
    """Make sure `<cache_dir>/movielens-100k/` holds the verified RecBole ml-100k files.

    Returns:
      The folder, ready for `tfrec.data.movielens.read_recbole`.
    Raises:
      FetchError: the cache folder cannot be written, pip could not download the wheel, or a
        checksum did not match.
    """
    cache_dir = cache_dir or default_cache_dir()
    folder = os.path.join(cache_dir, "movielens-100k")
    if _verified(folder):
        log(f"movielens-100k: already in {folder}")
        return folder
    with writing_cache(cache_dir):  # before the download: an unwritable cache fails at once
        os.makedirs(cache_dir, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="tfrec-fetch-") as tmp:
        log(f"movielens-100k: downloading {RECBOLE_REQUIREMENT} from PyPI "
            "(data only, not installed)")
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
               "--disable-pip-version-check", "--dest", tmp, RECBOLE_REQUIREMENT]
        result = subprocess.run(cmd, capture_output=True, text=True)
        wheels = [f for f in os.listdir(tmp) if f.endswith(".whl")]
        if result.returncode != 0 or not wheels:
            raise FetchError(f"`{' '.join(cmd)}` failed ({result.returncode}): "
                             f"{result.stderr.strip()[-2000:]}")
        extract_movielens_100k(os.path.join(tmp, wheels[0]), folder)
    log(f"movielens-100k: verified sha256 and saved to {folder}")
    return folder
