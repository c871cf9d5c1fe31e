"""Errors a user can act on, and the one line the `tfrec` command prints for each.

Anything else is a bug and keeps its traceback.
"""
import errno
import os
import re
import sys

# OSError numbers that mean "this machine cannot write there", with what to do about it.
_DISK_ADVICE = {
    errno.ENOSPC: "the disk is full; free space or point --runs-dir / the output elsewhere",
    errno.EDQUOT: "the disk quota is used up; free space or write elsewhere",
    errno.EROFS: "the file system is read-only; use a writable --runs-dir / output folder",
    errno.EACCES: "permission denied; use a folder you can write",
    errno.EPERM: "operation not permitted; use a folder you can write",
}


class TfrecError(Exception):
    """An error whose message says what was wrong and where; printed as one line."""


def _disk_message(err: OSError) -> str | None:
    advice = _DISK_ADVICE.get(err.errno) if err.errno is not None else None
    if advice is None:
        return None
    where = err.filename if err.filename is not None else "a file"
    return f"cannot write {where}: {err.strerror or advice.split(';')[0]} ({advice})"


def _tensorflow_message(err: BaseException) -> str | None:
    """TensorFlow raises its own error types for I/O (e.g. a checkpoint save on a full disk):
    "{{function_node ...}} <path>; No space left on device [Op:SaveV2]" becomes one line like
    an OSError's."""
    tf = sys.modules.get("tensorflow")
    if tf is None or not isinstance(err, tf.errors.OpError):
        return None
    text = (err.message or type(err).__name__).strip().splitlines()[0]
    text = re.sub(r"^\{\{[^}]*\}\}\s*|\s*\[Op:\w+\]$", "", text)
    for number, advice in _DISK_ADVICE.items():
        reason = os.strerror(number)
        if reason.lower() in text.lower():
            where = text[:text.lower().index(reason.lower())].rstrip("; :") or "a file"
            return f"cannot write {where}: {reason} ({advice})"
    if isinstance(err, (tf.errors.ResourceExhaustedError, tf.errors.PermissionDeniedError)):
        return text
    return None


def user_error_message(err: BaseException) -> str | None:
    """The one-line message for an error a user can fix, or None for a bug (re-raise it)."""
    from tfrec.config import ConfigError
    from tfrec.data.errors import DataError
    from tfrec.data.fetch import FetchError
    if isinstance(err, (TfrecError, ConfigError, DataError, FetchError, FileNotFoundError,
                        KeyError)):
        return str(err)
    if isinstance(err, OSError):
        return _disk_message(err)
    return _tensorflow_message(err)
