"""The video embeddings for TensorBoard's projector, labelled with their titles.

Writes <log_dir>/: a checkpoint of the output video embeddings [V, d] (the softmax weights v_j),
metadata.tsv (video_id and title per row, in the same order) and projector_config.pbtxt, which
TensorBoard's projector reads from the log folder (no network needed).
`tensorboard --logdir runs/<name>/tensorboard` then shows them under "Projector".
"""
import os
import uuid
from typing import Any

import pandas as pd
from tensorboard.plugins import projector

from tfrec.tf_keras2 import tf
from tfrec.stages import replace_dir

TENSOR_NAME = "embedding/.ATTRIBUTES/VARIABLE_VALUE"


def _cell(value: object) -> str:
    """A TSV-safe cell: tabs and newlines would shift the projector's rows."""
    return " ".join(str(value).split()) or "(untitled)"


def write_projector(log_dir: str, model: Any, videos: pd.DataFrame) -> str:
    """Write the projector files for a CandidateGenerationModel's output video embeddings.

    Args:
      log_dir: folder to (re)create, atomically.
      model: CandidateGenerationModel (its `video_ids` and output embedding rows are used).
      videos: the videos table; its `title` column labels the points when present.
    """
    ids = [str(v) for v in model.video_ids]
    rows = model.video_embedding.embeddings[2:].numpy()  # rows 0, 1: padding and OOV
    titles = dict(zip(videos["video_id"].astype(str), videos["title"])) \
        if "title" in videos.columns else {}
    tmp = f"{log_dir}.tmp-{uuid.uuid4().hex[:8]}"
    os.makedirs(tmp)
    with open(os.path.join(tmp, "metadata.tsv"), "w") as f:
        f.write("video_id\ttitle\n")
        for video in ids:
            f.write(f"{_cell(video)}\t{_cell(titles.get(video, ''))}\n")
    checkpoint = tf.train.Checkpoint(embedding=tf.Variable(rows, name="video_embedding"))
    checkpoint.save(os.path.join(tmp, "embedding.ckpt"))
    config = projector.ProjectorConfig()
    embedding = config.embeddings.add()
    embedding.tensor_name = TENSOR_NAME
    embedding.metadata_path = "metadata.tsv"
    projector.visualize_embeddings(tmp, config)
    # TensorBoard's projector looks for its config only in folders holding an event file (its
    # "runs") and the log root: one text summary makes this folder a run.
    writer = tf.summary.create_file_writer(tmp)
    with writer.as_default():
        tf.summary.text("about", f"Output video embeddings v_j ({len(ids)} x {rows.shape[1]}), "
                        "labelled by title: see the Projector tab.", step=0)
    writer.close()
    os.makedirs(os.path.dirname(log_dir), exist_ok=True)
    replace_dir(tmp, log_dir)
    return log_dir
