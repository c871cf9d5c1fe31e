"""The popularity stage: the baseline every generator is compared with (figures per split, and
per test query for the paired comparison)."""
import typing

import pandas as pd

from tfrec.pipeline.registry import register_stage
from tfrec.pipeline.retrieval_figures import (TEST_PER_QUERY, figures_log_line,
                                              popularity_figures, write_per_query)
from tfrec.stages import Stage, StageContext


def run_popularity(ctx: StageContext) -> dict[str, typing.Any]:
    examples = ctx.inputs["examples"]
    result, per_query = popularity_figures(examples, ctx.inputs["events"], ctx.config)
    write_per_query(ctx, per_query["test"])
    ctx.log(figures_log_line(result["test"]))
    return {"popularity": result}


def load_popularity(ctx: StageContext) -> pd.DataFrame:
    """Popularity's per-query test figures (DataFrame)."""
    return pd.read_parquet(ctx.path(TEST_PER_QUERY))


STAGE = register_stage(Stage("popularity", run_popularity, load_popularity,
                             depends_on=("events", "examples"), config_sections=("evaluation",),
                             version=4, rank=30))
