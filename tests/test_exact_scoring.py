"""The chunked TensorFlow scoring (tfrec.evaluation.exact_scoring) against plain NumPy
references, on random scores with many ties and exclusions, at every chunk size from one
query per chunk to all of them (so chunk boundaries fall everywhere)."""
import numpy as np
import pandas as pd
import pytest

from tfrec.evaluation.exact_scoring import (Exclusions, exact_top_k, target_ranks,
                                            top_k_chunks)
from tfrec.features.ragged import Ragged

Q, N = 23, 17


def _case(seed=0):
    """Integer-valued scores (ties everywhere), targets, and exclusions that sometimes hold
    the target (a re-watch), repeat a video, or name a video outside the corpus."""
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, 5, size=(Q, N)).astype(np.float32)
    targets = rng.integers(0, N, size=Q)
    excluded = [list(rng.choice(N, size=rng.integers(0, 6), replace=False)) for _ in range(Q)]
    excluded[0] = excluded[0] + [int(targets[0])]  # the target among the exclusions
    excluded[1] = excluded[1] + excluded[1][:1]  # a video excluded twice
    ids = [f"v{j}" for j in range(N)]
    values = [ids[j] for row in excluded for j in row] + ["unknown"]
    lengths = [len(row) for row in excluded]
    lengths[-1] += 1  # the last query also excludes a video the corpus does not have
    exclusions = Exclusions(Ragged(np.array(values, dtype=object), np.array(lengths)),
                            pd.Index(ids))
    mask = np.zeros((Q, N), bool)
    for row, cols in enumerate(excluded):
        mask[row, cols] = True
    return scores, targets, exclusions, mask


@pytest.mark.parametrize("rows_per_chunk", [1, 4, 7, Q])
def test_target_ranks_equal_numpy_with_ties_and_exclusions(rows_per_chunk):
    scores, targets, exclusions, mask = _case()
    greater, ties = target_ranks(lambda s, e: scores[s:e], targets, exclusions, N,
                                 max_cells=rows_per_chunk * N)
    for row in range(Q):
        eligible = ~mask[row]
        eligible[targets[row]] = True  # the target is always ranked
        t = scores[row, targets[row]]
        assert greater[row] == np.sum((scores[row] > t) & eligible)
        assert ties[row] == np.sum((scores[row] == t) & eligible) - 1
    assert ties.sum() > Q  # the case does have ties


@pytest.mark.parametrize("rows_per_chunk", [1, 5, Q])
def test_top_k_equals_numpy_lower_column_first_among_ties(rows_per_chunk):
    scores, _, exclusions, mask = _case(1)
    mask[3, :] = True  # a query with nothing eligible: every slot invalid
    mask[4, 2:] = True  # one with 2 eligible videos: the rest invalid
    late = np.zeros((Q, N), bool)
    late[:, -3:] = True  # the last 3 videos not yet uploaded for anyone
    k = 6
    got = list(top_k_chunks(lambda s, e: scores[s:e], Q, N, k, exclusions,
                            lambda s, e: (late | np.pad(mask[3:5], ((3, Q - 5), (0, 0))))[s:e],
                            max_cells=rows_per_chunk * N))
    assert [e - s for s, e, *_ in got] == [min(rows_per_chunk, Q - s)
                                            for s in range(0, Q, rows_per_chunk)]
    top = np.concatenate([t for *_, t, _ in got])
    valid = np.concatenate([v for *_, v in got])
    for row in range(Q):
        blocked = mask[row] | late[row]
        eligible = np.flatnonzero(~blocked)
        order = eligible[np.lexsort((eligible, -scores[row, eligible]))][:k]
        n = len(order)
        assert top[row, :n].tolist() == order.tolist()
        assert valid[row].tolist() == [True] * n + [False] * (k - n)
        assert not set(top[row, n:]) & set(eligible)  # invalid slots never hide an eligible one
    assert not valid[3].any() and 0 < valid[4].sum() <= 2


def test_exact_top_k_is_the_numpy_argsort_of_dot_products():
    rng = np.random.default_rng(2)
    queries = rng.normal(size=(50, 8)).astype(np.float32)
    table = rng.normal(size=(300, 8)).astype(np.float32)
    want = np.argsort(-(queries.astype(np.float64) @ table.T.astype(np.float64)),
                      axis=1)[:, :10]
    got = exact_top_k(queries, table, 10, max_cells=7 * 300)  # 8 chunks, the last of 1 row
    assert got.shape == (50, 10)
    assert (got == want).mean() > 0.99  # float32 round-off may swap a near-tie, nothing more
    assert all(len(set(g) & set(w)) >= 9 for g, w in zip(got, want))
