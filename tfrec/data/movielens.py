"""MovieLens-100K as event tables, from any of three sources that must agree.

  * a GroupLens folder (`u.data`, `u.user`, `u.item`, as in ml-100k.zip),
  * the RecBole atomic files (`ml-100k.inter`, `ml-100k.user`, `ml-100k.item`), which is what
    `tfrec data fetch movielens-100k` puts in the cache (see `tfrec.data.fetch`),
  * TFDS `movielens/100k-ratings`, already prepared in a TFDS data_dir
    (see `tfrec.data.tfds_source`).

Every rating is a watch, and the rating (1-5) stands in for its watch time, which MovieLens does
not record (docs/PROTOCOL.md, P1). Searches and impressions are empty. Titles are normalised
the same way for every source: the trailing " (YYYY)" is removed and a trailing ", The" / ", A" /
", An" article moves to the front, so "Deadly Cure, The (1996)" becomes
"The Deadly Cure". Genres are "|"-joined names in GroupLens order.
"""
import os
import re
from collections.abc import Sequence

import pandas as pd

from tfrec.data.errors import DataError
from tfrec.data.schema import EventTables, coerce_table

# A header-less file's layout: (column names, their description for error messages).
Layout = tuple[list[str], str]

GENRES = ("unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
          "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
          "Romance", "Sci-Fi", "Thriller", "War", "Western")
GROUPLENS_FILES = ("u.data", "u.user", "u.item")
RECBOLE_FILES = ("ml-100k.inter", "ml-100k.user", "ml-100k.item")
_YEAR_SUFFIX = re.compile(r"\s*\((\d{4})\)\s*$")
_TRAILING_ARTICLE = re.compile(r"^(.*), (The|A|An)$")
# RecBole's copy spells the one title-less movie (id 267) "unkonwn"; GroupLens says "unknown".
_UNKNOWN_SPELLINGS = {"unkonwn": "unknown"}


def normalise_title(raw: object) -> str:
    """'Deadly Cure, The (1996)' -> 'The Deadly Cure'; 'Toy Story' -> 'Toy Story'."""
    title = _YEAR_SUFFIX.sub("", str(raw)).strip()
    title = _UNKNOWN_SPELLINGS.get(title, title)
    match = _TRAILING_ARTICLE.match(title)
    return f"{match.group(2)} {match.group(1)}" if match else title


def _year(raw: object) -> str:
    text = str(raw).strip()
    match = re.search(r"(\d{4})$", text)
    return match.group(1) if match else ""


def _check_files(folder: str, names: Sequence[str]) -> None:
    if not os.path.isdir(folder):
        raise DataError(folder, "not a folder")
    missing = [n for n in names if not os.path.exists(os.path.join(folder, n))]
    if missing:
        raise DataError(folder, f"missing file(s) {missing}; expected {list(names)}")


def _check_field_counts(path: str, sep: str, encoding: str, described: Layout | None = None
                        ) -> None:
    """Raise a DataError at the first line whose number of fields differs from the layout's.

    pandas does not: given more fields than names it silently makes the extra leading ones the
    index (every column shifts, so a video id is read as a user id), and it fills missing
    fields with NaN. The expected count is `described`'s (names, words) or, for a file with a
    header, the header's.
    """
    with open(path, encoding=encoding, newline="") as f:
        lines = (line.rstrip("\r\n") for line in f)
        numbered = ((n, line) for n, line in enumerate(lines, 1) if line)  # pandas skips blanks
        if described is None:
            _, header = next(numbered, (0, ""))
            names = [c.split(":", 1)[0] for c in header.split(sep)]
            described = (names, "as in the header: " + ", ".join(names))
        expected = len(described[0])
        for number, line in numbered:
            found = line.count(sep) + 1
            if found != expected:
                kind = "tab" if sep == "\t" else f"'{sep}'"
                raise DataError(path, f"expected {expected} {kind}-separated fields "
                                      f"({described[1]}), found {found}", number)


def _read_delimited(path: str, sep: str, described: Layout | None = None,
                    encoding: str = "utf-8") -> pd.DataFrame:
    """Read a delimited text file as strings; an empty file or a line with the wrong number of
    fields is a DataError.

    Args:
      described: (column names, their description for errors) of a file without a header;
        None reads the header line for the names.
    """
    if os.path.getsize(path) == 0:
        raise DataError(path, "the file is empty")
    names = described[0] if described else None
    try:
        _check_field_counts(path, sep, encoding, described)
        return pd.read_csv(path, sep=sep, header=None if names else 0, names=names, dtype=str,
                           keep_default_na=False, na_values=[""], encoding=encoding,
                           quoting=3, engine="c")
    except (pd.errors.ParserError, UnicodeDecodeError) as err:
        raise DataError(path, f"cannot parse: {err}") from err


def _finish(watches: pd.DataFrame, users: pd.DataFrame, videos: pd.DataFrame,
            sources: dict[str, str], header_lines: int) -> EventTables:
    return EventTables(
        watches=coerce_table(watches, "watches", sources["watches"], header_lines),
        users=coerce_table(users, "users", sources["users"], header_lines),
        videos=coerce_table(videos, "videos", sources["videos"], header_lines),
        sources=sources,
        header_lines={"watches": header_lines, "users": header_lines, "videos": header_lines},
    ).validated()


# GroupLens files have no header: (column names, what the README calls them) of each.
GROUPLENS_LAYOUT: dict[str, Layout] = {
    "u.data": (["user_id", "video_id", "watch_time", "timestamp"],
               "user id, item id, rating, timestamp"),
    "u.user": (["user_id", "age", "gender", "occupation", "zip_code"],
               "user id, age, gender, occupation, zip code"),
    "u.item": (["video_id", "title", "release_date", "video_release_date", "url", *GENRES],
               f"movie id, title, release date, video release date, IMDb URL, {len(GENRES)} "
               "genre flags"),
}


def read_grouplens(folder: str) -> EventTables:
    """Event tables from a GroupLens ml-100k folder (u.data, u.user, u.item)."""
    _check_files(folder, GROUPLENS_FILES)
    paths = {n: os.path.join(folder, n) for n in GROUPLENS_FILES}
    data = _read_delimited(paths["u.data"], "\t", GROUPLENS_LAYOUT["u.data"])
    users = _read_delimited(paths["u.user"], "|", GROUPLENS_LAYOUT["u.user"])
    items = _read_delimited(paths["u.item"], "|", GROUPLENS_LAYOUT["u.item"], encoding="latin-1")
    flags = items[list(GENRES)].fillna("0").to_numpy() == "1"
    videos = pd.DataFrame({
        "video_id": items["video_id"],
        "title": items["title"].fillna("").map(normalise_title),
        "release_year": items["release_date"].fillna("").map(_year),
        "genres": ["|".join(g for g, on in zip(GENRES, row) if on) for row in flags],
    })
    sources = {"watches": paths["u.data"], "users": paths["u.user"], "videos": paths["u.item"]}
    return _finish(data, users, videos, sources, header_lines=0)


def _recbole_frame(path: str) -> pd.DataFrame:
    """Read a RecBole atomic file; its header names look like 'user_id:token'."""
    df = _read_delimited(path, "\t")
    df.columns = [c.split(":", 1)[0] for c in df.columns]
    return df


def read_recbole(folder: str) -> EventTables:
    """Event tables from RecBole's atomic ml-100k files (ml-100k.inter/.user/.item)."""
    _check_files(folder, RECBOLE_FILES)
    paths = {n: os.path.join(folder, n) for n in RECBOLE_FILES}
    inter = _recbole_frame(paths["ml-100k.inter"]).rename(
        columns={"item_id": "video_id", "rating": "watch_time"})
    users = _recbole_frame(paths["ml-100k.user"])
    items = _recbole_frame(paths["ml-100k.item"])
    for path, df, col in ((paths["ml-100k.item"], items, "item_id"),):
        if col not in df.columns:
            raise DataError(path, f"missing column(s) ['{col}'] (found: {list(df.columns)})")
    order = {g: i for i, g in enumerate(GENRES)}
    videos = pd.DataFrame({
        "video_id": items["item_id"],
        "title": items.get("movie_title", pd.Series("", index=items.index)).fillna("")
        .map(normalise_title),
        "release_year": items.get("release_year", pd.Series("", index=items.index)).fillna("")
        .map(_year),
        "genres": items.get("class", pd.Series("", index=items.index)).fillna("").map(
            lambda s: "|".join(sorted(s.split(), key=lambda g: order.get(g, len(order))))),
    })
    sources = {"watches": paths["ml-100k.inter"], "users": paths["ml-100k.user"],
               "videos": paths["ml-100k.item"]}
    return _finish(inter, users, videos, sources, header_lines=1)
