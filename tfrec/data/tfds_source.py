"""MovieLens-100K from TFDS `movielens/100k-ratings`, already prepared in a TFDS data_dir.

Nothing is downloaded: `download=False`. TFDS encodes the raw files a little differently from
GroupLens, and this reader undoes that so every source gives the same event tables:
user_gender is a bool (True = "M"), raw_user_age a float, genres are ClassLabel ints whose names
differ slightly ("Children" for "Children's", "Unknown" for "unknown"), and the title keeps its
" (YYYY)" suffix (normalised here as in `tfrec.data.movielens`). TFDS does not carry the release
date, so release_year comes from the title.
"""
import re

import numpy as np
import pandas as pd

from tfrec.data.errors import DataError
from tfrec.data.movielens import GENRES, _year, normalise_title
from tfrec.data.schema import EventTables, coerce_table

TFDS_NAME = "movielens/100k-ratings"


def _genre_key(name: str) -> str:
    return re.sub(r"[^a-z]", "", name.lower().replace("'s", ""))


def read_tfds_movielens(data_dir: str, name: str = TFDS_NAME) -> EventTables:
    """Event tables from a prepared TFDS MovieLens ratings dataset in `data_dir`.

    Raises:
      DataError: the dataset is not prepared in `data_dir`.
    """
    from tfrec.keras_check import require_keras2
    require_keras2()
    import tensorflow_datasets as tfds

    builder = tfds.builder(name, data_dir=data_dir)
    if not builder.is_prepared():
        raise DataError(data_dir, f"TFDS {name} is not prepared in this data_dir (expected "
                                  f"{builder.data_dir}); tfrec never downloads it at run time")
    genre_names = builder.info.features["movie_genres"].feature.names
    to_grouplens = {_genre_key(g): g for g in GENRES}
    genre_of_label = np.array([to_grouplens.get(_genre_key(g), g) for g in genre_names],
                              dtype=object)
    order = {g: i for i, g in enumerate(GENRES)}

    columns: dict[str, list[np.ndarray]] = {
        k: [] for k in ("user_id", "movie_id", "timestamp", "user_rating", "movie_title",
                        "raw_user_age", "user_gender", "user_occupation_text", "user_zip_code")}
    genres: list[str] = []
    for batch in tfds.as_numpy(builder.as_dataset(split="train").ragged_batch(20_000)):
        for key in columns:
            columns[key].append(batch[key])
        genres.extend("|".join(sorted(genre_of_label[np.asarray(row, dtype=np.int64)],
                                      key=lambda g: order.get(g, len(order))))
                      for row in batch["movie_genres"].to_list())
    raw = {k: np.concatenate(v) for k, v in columns.items()}
    text = lambda a: pd.Series(a).str.decode("utf-8")  # noqa: E731
    source = f"{data_dir}/{name}"

    watches = pd.DataFrame({"user_id": text(raw["user_id"]), "video_id": text(raw["movie_id"]),
                            "timestamp": raw["timestamp"],
                            "watch_time": raw["user_rating"].astype(np.float64)})
    users = pd.DataFrame({
        "user_id": watches["user_id"],
        "age": pd.Series(raw["raw_user_age"]).round().astype(np.int64).astype(str),
        "gender": np.where(raw["user_gender"], "M", "F"),
        "occupation": text(raw["user_occupation_text"]),
        "zip_code": text(raw["user_zip_code"]),
    }).drop_duplicates("user_id")
    titles = text(raw["movie_title"])
    videos = pd.DataFrame({
        "video_id": watches["video_id"],
        "title": titles.map(normalise_title),
        "genres": genres,
        "release_year": titles.map(lambda t: _year(re.sub(r"\)\s*$", "", t.strip()))
                                   if re.search(r"\(\d{4}\)\s*$", t) else ""),
    }).drop_duplicates("video_id")
    # TFDS has no users/videos tables; sort them by id as the files are, numerically if possible.
    users = users.iloc[np.argsort(pd.to_numeric(users["user_id"], errors="coerce"),
                                  kind="stable")]
    videos = videos.iloc[np.argsort(pd.to_numeric(videos["video_id"], errors="coerce"),
                                    kind="stable")]
    return EventTables(
        watches=coerce_table(watches, "watches", source, 0),
        users=coerce_table(users, "users", source, 0),
        videos=coerce_table(videos, "videos", source, 0),
        sources={"watches": source, "users": source, "videos": source},
    ).validated()
