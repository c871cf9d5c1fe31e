"""The local (single-process, vectorised) driver of example building.

It orders and splits watches, encodes ids as integer codes for speed, slices each user's events and
calls the pure per-user functions of `tfrec.features.candidate_examples`, then decodes the codes
back to string ids and joins demographics. A Beam driver would do the same slicing per user.
"""
import dataclasses

import numpy as np
import pandas as pd

from tfrec.data.errors import DataError
from tfrec.features.candidate_examples import (ExampleConfig, UserSearches,
                                               user_candidate_examples, user_next_watch_queries)
from tfrec.features.example_set import ExampleSet
from tfrec.features.ordering import order_watches
from tfrec.features.ragged import Ragged
from tfrec.features.split import TEST, TRAIN, VALIDATION, next_watch_roles


@dataclasses.dataclass
class CandidateExamples:
    """Training examples and the P1 held-out queries.

    train: label, user_id, timestamp, example_age (s), watches_before (the label's position in
      the user's watch order: the example's cut, `tfrec.features.history`), watch_history,
      search_tokens, demographics.
    validation / test: the same columns (example_age 0) plus exclusions (all earlier watches).
    train_watches: the ordered training-part watches (for popularity and vocabularies).
    end_of_training: last training timestamp (s).
    """

    train: ExampleSet
    validation: ExampleSet
    test: ExampleSet
    train_watches: pd.DataFrame
    end_of_training: int

    def counts(self):
        return {"train": len(self.train), "validation": len(self.validation),
                "test": len(self.test)}


def tokenize_query(query):
    """Search query -> tokens: lower-cased, split on whitespace."""
    return str(query).lower().split()


def _user_bounds(sorted_user_ids):
    n = len(sorted_user_ids)
    if n == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    starts = np.flatnonzero(np.r_[True, sorted_user_ids[1:] != sorted_user_ids[:-1]])
    return starts, np.r_[starts[1:], n]


def _encode_searches(searches):
    """Per-user UserSearches with token codes, and the token vocabulary."""
    if len(searches) == 0:
        return {}, np.zeros(0, dtype=object)
    ordered = searches.sort_values(["user_id", "timestamp"], kind="stable").reset_index(drop=True)
    tokens = [tokenize_query(q) for q in ordered["query"]]
    lengths = np.fromiter((len(t) for t in tokens), np.int64, len(tokens))
    flat = np.array([tok for toks in tokens for tok in toks], dtype=object)
    codes, vocab = pd.factorize(flat)
    all_tokens = Ragged(codes.astype(np.int64), lengths)
    users = ordered["user_id"].to_numpy()
    times = ordered["timestamp"].to_numpy(np.int64)
    out = {}
    offsets = all_tokens.offsets  # computed once: per-user slices are then O(own searches)
    for start, end in zip(*_user_bounds(users)):
        out[users[start]] = UserSearches(
            times[start:end], Ragged(all_tokens.values[offsets[start]:offsets[end]],
                                     all_tokens.lengths[start:end]))
    return out, np.asarray(vocab, dtype=object)


def _decode(columns, video_vocab, token_vocab, users, demographics):
    """Codes -> string ids; demographics joined by user."""
    out = {}
    for name, col in columns.items():
        if name in ("label",):
            out[name] = video_vocab[col]
        elif name in ("watch_history", "exclusions"):
            out[name] = col.map_values(lambda v: video_vocab[v])
        elif name == "search_tokens":
            out[name] = col.map_values(lambda v: token_vocab[v])
        else:
            out[name] = col
    rows = users.index.get_indexer(out["user_id"])
    for col in demographics:
        out[col] = users[col].to_numpy(dtype=object)[rows]
    return ExampleSet(out)


def build_candidate_examples(events, config=ExampleConfig(), progress=None):
    """All candidate-generation examples and P1 queries of a validated EventTables.

    Args:
      events: tfrec.data.schema.EventTables.
      config: ExampleConfig.
      progress: optional callable(done_users, total_users), called now and then.
    Returns:
      CandidateExamples.
    """
    if len(events.watches) == 0:
        raise DataError(events.sources.get("watches", "watches"), "no watches to build examples")
    watches = order_watches(events.watches)
    roles = next_watch_roles(watches["user_id"].to_numpy())
    train_mask = roles == TRAIN
    if not (roles == TEST).any():
        raise DataError(events.sources.get("watches", "watches"),
                        "no user has the 3 watches needed for a validation and a test target")
    end_of_training = int(watches["timestamp"].to_numpy()[train_mask].max())
    video_vocab = events.videos["video_id"].to_numpy(dtype=object)
    codes = pd.Index(video_vocab).get_indexer(watches["video_id"])
    times = watches["timestamp"].to_numpy(np.int64)
    user_ids = watches["user_id"].to_numpy()
    searches, token_vocab = _encode_searches(events.searches)

    train_parts, eval_parts = [], {VALIDATION: [], TEST: []}
    starts, ends = _user_bounds(user_ids)
    for i, (start, end) in enumerate(zip(starts, ends)):
        user = user_ids[start]
        v, t, r = codes[start:end], times[start:end], roles[start:end]
        user_searches = searches.get(user)
        num_train = int((r == TRAIN).sum())
        ex = user_candidate_examples(user, v, t, num_train, end_of_training, config, user_searches)
        ex["user_id"] = np.full(len(ex["label"]), user, dtype=object)
        train_parts.append(ex)
        for role in (VALIDATION, TEST):
            pos = np.flatnonzero(r == role)
            if len(pos):
                q = user_next_watch_queries(v, t, pos, config, user_searches)
                q["user_id"] = np.full(len(pos), user, dtype=object)
                eval_parts[role].append(q)
        if progress and (i % 1000 == 0 or i == len(starts) - 1):
            progress(i + 1, len(starts))

    if sum(len(p["label"]) for p in train_parts) == 0:
        raise DataError(events.sources.get("watches", "watches"),
                        f"no training examples: no user has more than examples.min_history="
                        f"{config.min_history} training watches")
    users = events.users.set_index("user_id")
    demographics = [c for c in users.columns]
    decode = lambda parts: _decode(ExampleSet.concat(parts).columns, video_vocab,  # noqa: E731
                                   token_vocab, users, demographics)
    return CandidateExamples(
        train=decode(train_parts),
        validation=decode(eval_parts[VALIDATION]),
        test=decode(eval_parts[TEST]),
        train_watches=watches.loc[train_mask].reset_index(drop=True),
        end_of_training=end_of_training,
    )
