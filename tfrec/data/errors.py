"""The one error type for bad input data: it says which file, which row and what was wrong."""
import os


class DataError(ValueError):
    """Bad input data.

    Args:
      source: the file (or table) the problem is in.
      problem: what is wrong, in words a user can act on.
      row: 1-based line number in `source` (counting a header line), or None for whole-file issues.
    """

    def __init__(self, source: str | os.PathLike[str], problem: str, row: int | None = None
                 ) -> None:
        self.source, self.problem, self.row = str(source), problem, row
        where = f"{self.source}, line {row}" if row is not None else self.source
        super().__init__(f"{where}: {problem}")
