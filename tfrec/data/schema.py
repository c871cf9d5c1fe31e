"""The event schema every data source produces (docs/ARCHITECTURE.md, "The event schema").

Five tables, as pandas DataFrames:
  watches:     user_id, video_id, timestamp (int64 s), watch_time (float64 s, >= 0)
  impressions: user_id, video_id, timestamp, position (int64), clicked (int64 0/1), watch_time
  searches:    user_id, timestamp, query (str)
  users:       user_id, plus optional demographics (str)
  videos:      video_id, plus optional upload_timestamp (int64 s), title, language, channel (str),
               duration (float64 s), genres (str, "|"-joined), release_year (str), topic (str)
Impressions of the simulator also carry true_click_probability and true_expected_watch_time (s).
Ids are strings. Sources convert raw rows with `coerce_table`, which raises `DataError` naming the
file and line of the first bad value, then `EventTables.validated()` checks the cross-table rules.

Duplicates: rows of a table that repeat another row exactly (same values in every column) are
dropped, keeping the first; the number dropped is recorded in `EventTables.dropped_duplicates`.
Two rows of `users` (or `videos`) with the same id but different values are an error. Repeated
watches of one video at different times are real re-watches and are kept.
"""
import dataclasses
import os
import re
from collections.abc import Callable

import numpy as np
import pandas as pd
import pyarrow as pa

from tfrec.data.errors import DataError

# Column kinds: "id" and "str" are strings, "int" is int64, "float" is float64,
# "nonneg" is a float64 that must be finite and >= 0, "bool01" is an int64 in {0, 1}.
TABLE_COLUMNS = {
    "watches": {"user_id": "id", "video_id": "id", "timestamp": "int", "watch_time": "nonneg"},
    "impressions": {
        "user_id": "id", "video_id": "id", "timestamp": "int", "position": "int",
        "clicked": "bool01", "watch_time": "nonneg",
    },
    "searches": {"user_id": "id", "timestamp": "int", "query": "str"},
    "users": {"user_id": "id"},
    "videos": {"video_id": "id"},
}
OPTIONAL_COLUMNS = {
    "users": {"age": "str", "gender": "str", "occupation": "str", "zip_code": "str",
              "country": "str", "device": "str", "language": "str"},
    "videos": {"upload_timestamp": "int", "title": "str", "language": "str", "channel": "str",
               "duration": "nonneg", "genres": "str", "release_year": "str", "topic": "str"},
    # Ground truth that only a simulator knows (P2): kept so evaluation can compare against it.
    "impressions": {"true_click_probability": "nonneg", "true_expected_watch_time": "nonneg"},
}
TABLES = tuple(TABLE_COLUMNS)


def _empty(table: str) -> pd.DataFrame:
    kinds = TABLE_COLUMNS[table]
    dtypes = {"id": object, "str": object, "int": np.int64, "float": np.float64,
              "nonneg": np.float64, "bool01": np.int64}
    return pd.DataFrame({c: pd.Series([], dtype=dtypes[k]) for c, k in kinds.items()})


def _coerce_column(values: pd.Series, kind: str, column: str, source: str,
                   line_of: Callable[[int], int]) -> pd.Series:
    """Convert one raw column to its kind; raise DataError at the first bad value."""
    if kind in ("id", "str"):
        bad = values.isna().to_numpy()
        if kind == "id" and bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise DataError(source, f"column '{column}' is empty", line_of(i))
        out = values.astype(str)
        if kind == "str":
            out = out.where(~bad, "")
        if kind == "id":
            blank = (out.str.strip() == "").to_numpy()
            if blank.any():
                i = int(np.flatnonzero(blank)[0])
                raise DataError(source, f"column '{column}' is blank", line_of(i))
        return out.astype(object)
    numeric = pd.to_numeric(values, errors="coerce")
    bad = numeric.isna().to_numpy()
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raw = values.iloc[i]
        what = "is missing" if pd.isna(raw) else f"is not a number: {raw!r}"
        raise DataError(source, f"column '{column}' {what}", line_of(i))
    numeric = numeric.astype(np.float64)
    if not np.isfinite(numeric.to_numpy()).all():
        i = int(np.flatnonzero(~np.isfinite(numeric.to_numpy()))[0])
        raise DataError(source, f"column '{column}' is not finite: {values.iloc[i]!r}", line_of(i))
    if kind == "nonneg":
        neg = (numeric < 0).to_numpy()
        if neg.any():
            i = int(np.flatnonzero(neg)[0])
            raise DataError(source, f"column '{column}' is negative: {values.iloc[i]!r}",
                            line_of(i))
        return numeric
    if kind in ("int", "bool01"):
        frac = (numeric != np.floor(numeric)).to_numpy()
        if frac.any():
            i = int(np.flatnonzero(frac)[0])
            raise DataError(source, f"column '{column}' is not an integer: {values.iloc[i]!r}",
                            line_of(i))
        out = numeric.astype(np.int64)
        if kind == "bool01" and not out.isin([0, 1]).all():
            i = int(np.flatnonzero(~out.isin([0, 1]).to_numpy())[0])
            raise DataError(source, f"column '{column}' must be 0 or 1, got {values.iloc[i]!r}",
                            line_of(i))
        return out
    return numeric


def coerce_table(raw: pd.DataFrame, table: str, source: str, header_lines: int = 1
                 ) -> pd.DataFrame:
    """Turn a raw DataFrame (any dtypes, schema column names) into a schema table.

    Args:
      raw: DataFrame read from `source`; row i of it is line `i + 1 + header_lines` of the file.
      table: one of TABLES.
      source: file name used in error messages.
      header_lines: lines before the first data row in the file.
    Returns:
      DataFrame with the required columns, any known optional columns present in `raw`, typed.
    Raises:
      DataError: empty file, missing column, or a bad value (with its line).
    """
    if len(raw) == 0:
        raise DataError(source, f"no rows: the {table} file is empty")
    required = TABLE_COLUMNS[table]
    missing = [c for c in required if c not in raw.columns]
    if missing:
        raise DataError(source, f"missing column(s) {missing} (found: {list(raw.columns)})")
    line_of = lambda i: i + 1 + header_lines  # noqa: E731
    kinds = dict(required)
    kinds.update({c: k for c, k in OPTIONAL_COLUMNS.get(table, {}).items() if c in raw.columns})
    raw = raw.reset_index(drop=True)
    return pd.DataFrame(
        {c: _coerce_column(raw[c], k, c, source, line_of) for c, k in kinds.items()})


@dataclasses.dataclass
class EventTables:
    """The five event tables of one source (see module docstring)."""

    watches: pd.DataFrame
    users: pd.DataFrame
    videos: pd.DataFrame
    impressions: pd.DataFrame = dataclasses.field(default_factory=lambda: _empty("impressions"))
    searches: pd.DataFrame = dataclasses.field(default_factory=lambda: _empty("searches"))
    # table -> file name, for errors
    sources: dict[str, str] = dataclasses.field(default_factory=dict)
    # table -> lines before row 1
    header_lines: dict[str, int] = dataclasses.field(default_factory=dict)
    dropped_duplicates: dict[str, int] = dataclasses.field(default_factory=dict)

    def tables(self) -> dict[str, pd.DataFrame]:
        return {t: getattr(self, t) for t in TABLES}

    def validated(self) -> "EventTables":
        """Check ids across tables and drop exact duplicate rows. Returns a new EventTables.

        Raises:
          DataError: a watch, impression or search whose user or video is not in `users` /
            `videos` (naming the file and line); two different rows for one user or video id.
        """
        tables = self.tables()
        known = {"user_id": set(self.users["user_id"]), "video_id": set(self.videos["video_id"])}
        ref_table = {"user_id": "users", "video_id": "videos"}
        for name in ("watches", "impressions", "searches"):
            df = tables[name]
            for key in ("user_id", "video_id"):
                if key not in df.columns:
                    continue
                unknown = ~df[key].isin(known[key]).to_numpy()
                if unknown.any():
                    i = int(np.flatnonzero(unknown)[0])
                    ref = ref_table[key]
                    raise DataError(
                        self.sources.get(name, name),
                        f"unknown {key} {df[key].iloc[i]!r}: not in the {ref} table "
                        f"({self.sources.get(ref, ref)}); {int(unknown.sum())} row(s) affected",
                        i + 1 + self.header_lines.get(name, 0))
        out: dict[str, pd.DataFrame] = {}
        dropped: dict[str, int] = {}
        for name, df in tables.items():
            dup = df.duplicated(keep="first")
            dropped[name] = int(dup.sum())
            out[name] = df.loc[~dup].reset_index(drop=True)
        for name, key in (("users", "user_id"), ("videos", "video_id")):
            clash = out[name][key].duplicated(keep="first").to_numpy()
            if clash.any():
                i = int(np.flatnonzero(clash)[0])
                raise DataError(self.sources.get(name, name),
                                f"{key} {out[name][key].iloc[i]!r} appears twice with different "
                                "values")
        return dataclasses.replace(self, dropped_duplicates=dropped, **out)

    def counts(self) -> dict[str, int]:
        """Row counts per table, for metrics.json."""
        return {t: int(len(df)) for t, df in self.tables().items()}


def write_events(events: EventTables, directory: str) -> None:
    """Write each table as `<directory>/<table>.parquet`, atomically per file."""
    os.makedirs(directory, exist_ok=True)
    for name, df in events.tables().items():
        path = os.path.join(directory, f"{name}.parquet")
        tmp = path + ".tmp"
        df.to_parquet(tmp, index=False)
        os.replace(tmp, path)


# pyarrow prefixes its reason with the file it could not open; the DataError names it already.
_PYARROW_PREFIX = re.compile(r"^Could not open Parquet input source '.*?': ")


def _short_reason(err: BaseException) -> str:
    """pyarrow's reason in a few words: its first sentence of its first line, no file name."""
    text = _PYARROW_PREFIX.sub("", (str(err).strip().splitlines() or [""])[0])
    return text.split(". ")[0].rstrip(".") or type(err).__name__


def read_parquet_file(path: str) -> pd.DataFrame:
    """`pd.read_parquet(path)`, with a DataError naming the file when it cannot be read.

    Every read of an events folder goes through here, so a truncated or corrupt table says
    which file it is instead of ending in a pyarrow traceback.
    """
    try:
        return pd.read_parquet(path)
    except FileNotFoundError as err:
        raise DataError(path, "no such file") from err
    except (pa.ArrowException, OSError) as err:
        # An OSError with an errno is the file system's (permission, ...); pyarrow's own
        # decoding errors ("Corrupt snappy compressed data.") are OSErrors without one.
        if isinstance(err, OSError) and err.errno is not None:
            raise DataError(path, f"cannot read: {err.strerror}") from err
        reason = _short_reason(err)
        raise DataError(path, "not a readable Parquet file (truncated or corrupt: "
                              f"{reason})") from err


def read_events(directory: str) -> EventTables:
    """Read the tables written by `write_events` and validate them."""
    tables: dict[str, pd.DataFrame] = {}
    sources: dict[str, str] = {}
    for name in TABLES:
        path = os.path.join(directory, f"{name}.parquet")
        if not os.path.exists(path):
            if name in ("impressions", "searches"):
                continue
            raise DataError(path, f"missing {name} table")
        df = read_parquet_file(path)
        sources[name] = path
        tables[name] = coerce_table(df, name, path, header_lines=0) if len(df) else _empty(name)
    return EventTables(sources=sources, header_lines={t: 0 for t in tables}, **tables).validated()
