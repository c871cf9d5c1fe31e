"""One `tfrec run` per run folder at a time.

Two runs of one config would train into one checkpoints folder and both publish exports. A run
takes an exclusive `flock` on runs/<name>/.lock for its whole life and writes its pid there; a
second run fails at once, naming the holder. The kernel releases a flock when its process dies
(kill -9 included), so a lock is never stale.
"""
import contextlib
import errno
import fcntl
import os
from collections.abc import Iterator

from tfrec.errors import TfrecError

LOCK_FILE = ".lock"


class RunInUseError(TfrecError, RuntimeError):
    """Another process holds the run folder's lock."""


@contextlib.contextmanager
def run_folder_lock(run_dir: str | os.PathLike[str]) -> Iterator[None]:
    """Hold runs/<name>/.lock while the block runs; RunInUseError if another process has it."""
    path = os.path.join(run_dir, LOCK_FILE)
    # "a+" neither truncates the holder's pid before we own the lock nor fails on an existing file.
    with open(path, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            if err.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            f.seek(0)
            holder = f.read().strip() or "unknown"
            raise RunInUseError(f"{run_dir} is in use by another tfrec run (pid {holder}); wait "
                                "for it to finish, or give this run another name or --runs-dir"
                                ) from None
        try:
            f.seek(0)
            f.truncate()
            f.write(f"{os.getpid()}\n")
            f.flush()
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
