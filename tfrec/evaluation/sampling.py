"""Fixed, seeded samples of the users whose held-out queries are evaluated, and the standard
errors of figures measured on such a sample.

A user is in the sample of n when the crc32 of "seed:user_id" is among the n smallest (ties by
the id): the sample is a function of the seed and the set of user ids only, not of the order of
the queries, the run or the epoch, so a resumed run validates on the same users. With no more
than n users, every query is kept, in order, and the figures are exactly those of all queries.
"""
import dataclasses
import zlib
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from tfrec.features.example_set import ExampleSet


@dataclasses.dataclass(frozen=True)
class QuerySample:
    """The queries of a seeded user sample.

    Attributes:
      rows: [q] int64 rows of the sampled queries in the split's query set, ascending.
      users: distinct users sampled; of_users: distinct users in the split; seed: the seed.
    """

    rows: np.ndarray
    users: int
    of_users: int
    seed: int

    @property
    def is_all(self) -> bool:
        """Whether every user (so every query) is in the sample."""
        return self.users == self.of_users

    def describe(self) -> dict[str, Any]:
        """{"users", "of_users", "seed", "all"}: what metrics.json says of the sample."""
        return {"users": self.users, "of_users": self.of_users, "seed": self.seed,
                "all": self.is_all}


def sample_users(user_ids: npt.ArrayLike, n: int, seed: int) -> QuerySample:
    """The queries of n users drawn by seed (all of them when there are no more than n).

    Args:
      user_ids: [Q] the user of each query (any ids; compared as strings).
      n: users to keep (>= 1).
    """
    ids = pd.Series(np.asarray(user_ids, dtype=object)).astype(str)
    distinct = ids.unique()
    if n >= len(distinct):
        return QuerySample(np.arange(len(ids), dtype=np.int64), len(distinct), len(distinct),
                           seed)
    keys = np.fromiter((zlib.crc32(f"{seed}:{u}".encode()) for u in distinct), dtype=np.uint32,
                       count=len(distinct))
    chosen = distinct[np.lexsort((distinct, keys))[:n]]
    rows = np.flatnonzero(ids.isin(chosen).to_numpy()).astype(np.int64)
    return QuerySample(rows, n, len(distinct), seed)


def sample_queries(queries: ExampleSet, n: int, seed: int) -> QuerySample:
    """`sample_users` over the `user_id` column of a query set."""
    return sample_users(queries["user_id"], n, seed)


def standard_errors(table: pd.DataFrame) -> dict[str, float | None]:
    """{column: sd / sqrt(n)} of each per-query figure column of `table` (every column but
    `query`; sample sd, ddof 1; None below 2 rows).

    The standard error of a mean over n queries drawn from a larger set: how far the sampled
    figure may be from the figure of every query (the finite-population correction, at most
    sqrt(1 - n / N), is left out, so the error is never understated).
    """
    n = len(table)
    return {name: float(table[name].std(ddof=1) / np.sqrt(n)) if n > 1 else None
            for name in table.columns if name != "query"}
