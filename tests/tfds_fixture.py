"""Prepare TFDS `movielens/100k-ratings` offline from a GroupLens folder, for tests.

This runs TFDS's real preparation code (zip extraction, its MovieLens parser, the TFRecord writer).
The only shortcut: our zip is put where TFDS's download manager caches a finished download of the
official URL (its file name carries the registered checksum, so TFDS does not re-hash it), so no
HTTP request is made. `try_download_gcs=False` stops TFDS asking for a pre-built copy.
"""
import json
import os
import shutil
import zipfile

import tensorflow_datasets as tfds
from tensorflow_datasets.core.download import resource as tfds_resource

from tfrec.data.tfds_source import TFDS_NAME

FILES = ("u.data", "u.user", "u.item")


def prepare_tfds_movielens(grouplens_folder, data_dir):
    data_dir = os.path.abspath(data_dir)
    download_dir = os.path.join(data_dir, "downloads")
    zip_path = os.path.join(data_dir, "ml-100k.zip")
    os.makedirs(data_dir, exist_ok=True)
    with zipfile.ZipFile(zip_path, "w") as zf:
        for name in FILES:
            zf.write(os.path.join(grouplens_folder, name), f"ml-100k/{name}")
    builder = tfds.builder(TFDS_NAME, data_dir=data_dir)
    url = builder.builder_config.download_url
    expected = builder.url_infos[url]
    fname = tfds_resource.get_dl_fname(url, expected.checksum)
    cached = os.path.join(download_dir, builder.name, fname)
    os.makedirs(os.path.dirname(cached), exist_ok=True)
    shutil.copyfile(zip_path, cached)
    with open(cached + ".INFO", "w") as f:
        json.dump({"dataset_names": [builder.name], "original_fname": "ml-100k.zip",
                   "url_info": expected.asdict(), "urls": [url]}, f)
    builder.download_and_prepare(
        download_dir=download_dir,
        download_config=tfds.download.DownloadConfig(try_download_gcs=False))
    return data_dir


def recbole_to_grouplens(recbole_folder, out_folder):
    """Write RecBole's ml-100k atomic files as a GroupLens folder (titles get their year back)."""
    from tfrec.data.movielens import GENRES, read_recbole
    events = read_recbole(recbole_folder)
    os.makedirs(out_folder, exist_ok=True)
    w = events.watches
    with open(os.path.join(out_folder, "u.data"), "w") as f:
        f.writelines(f"{u}\t{v}\t{int(r)}\t{t}\n" for u, v, r, t in
                     zip(w.user_id, w.video_id, w.watch_time, w.timestamp))
    u = events.users
    with open(os.path.join(out_folder, "u.user"), "w") as f:
        f.writelines(f"{a}|{b}|{c}|{d}|{e}\n" for a, b, c, d, e in
                     zip(u.user_id, u.age, u.gender, u.occupation, u.zip_code))
    with open(os.path.join(out_folder, "u.item"), "w", encoding="latin-1") as f:
        for vid, title, year, genres in zip(events.videos.video_id, events.videos.title,
                                            events.videos.release_year, events.videos.genres):
            flags = "|".join("1" if g in genres.split("|") else "0" for g in GENRES)
            full = f"{title} ({year})" if year else title
            date = f"01-Jan-{year}" if year else ""
            f.write(f"{vid}|{full}|{date}||http://example.invalid/{vid}|{flags}\n")
    return out_folder
