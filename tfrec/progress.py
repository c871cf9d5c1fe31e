"""Progress bars for long loops (tqdm), drawn only for a person watching a terminal."""
import sys
from collections.abc import Callable
from typing import Any, TextIO

from tqdm import tqdm


def progress_wanted(quiet: bool = False, stream: TextIO | None = None) -> bool:
    """Bars are for people: off with --quiet and when output goes to a file or CI log."""
    stream = stream or sys.stdout
    return not quiet and hasattr(stream, "isatty") and stream.isatty()


def progress_bar(total: int | None = None, desc: str | None = None, enabled: bool = True,
                 leave: bool = True, unit: str = "batch") -> tqdm:
    """A tqdm bar (a context manager with update(n) and set_postfix()); a silent one when not
    enabled."""
    return tqdm(total=total, desc=desc, disable=not enabled, leave=leave, dynamic_ncols=True,
                unit=unit)


def progress_callback(bar: Any) -> Callable[[int, int], None]:
    """callable(done, total) that moves `bar` to `done` of `total` (for loops that report
    progress that way, e.g. example building)."""
    def report(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)
    return report
