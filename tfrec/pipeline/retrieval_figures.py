"""The figures of a candidate source (popularity, a trained generator) as the stages report
them: the K they are measured at, per split and per test query, and the log line."""
import os
import typing

import pandas as pd

from tfrec.config import PipelineConfig
from tfrec.data.schema import EventTables
from tfrec.evaluation.candidates import evaluate_candidates
from tfrec.evaluation.next_watch import COUNTS
from tfrec.evaluation.sampling import QuerySample, sample_queries
from tfrec.features.local_driver import CandidateExamples
from tfrec.models.popularity import Popularity
from tfrec.pipeline.data_source import simulated_world
from tfrec.stages import StageContext

# Recall@K is also measured at these K, for the report's Recall@K curves.
CURVE_KS = (1, 5, 10, 20, 50, 100, 200, 500)
# Per-query test figures in the popularity and candidate_generation folders, for the paired
# comparison of the two (`tfrec.evaluation.candidates.compare_per_query`).
TEST_PER_QUERY = "test_per_query.parquet"


def evaluation_ks(config: PipelineConfig) -> tuple[int, ...]:
    """The configured K plus the curve's, ascending."""
    return tuple(sorted(set(config.evaluation.ks) | set(CURVE_KS)))


def figures_log_line(figures: dict[str, typing.Any]) -> str:
    """'  test recall@10=0.1234, ...': the float figures of a split, for the log."""
    return "  test " + ", ".join(f"{k}={v:.4f}" for k, v in figures.items()
                                 if k not in COUNTS and isinstance(v, float))


def write_per_query(ctx: StageContext, table: pd.DataFrame) -> None:
    """The per-query test figures into the stage's folder (TEST_PER_QUERY), atomically."""
    tmp = ctx.path(TEST_PER_QUERY + ".tmp")
    table.to_parquet(tmp, index=False)
    os.replace(tmp, ctx.path(TEST_PER_QUERY))


def evaluation_samples(examples: CandidateExamples, config: PipelineConfig
                       ) -> dict[str, QuerySample]:
    """{split: QuerySample}: the validation users (`evaluation.validation_users`) and, when
    `evaluation.test_users` is set, the test users, drawn by `evaluation.seed`."""
    evaluation = config.evaluation
    samples = {"validation": sample_queries(examples.validation, evaluation.validation_users,
                                            evaluation.seed)}
    if evaluation.test_users:
        samples["test"] = sample_queries(examples.test, evaluation.test_users, evaluation.seed)
    return samples


def popularity_figures(examples: CandidateExamples, events: EventTables,
                       config: PipelineConfig) -> tuple[dict, dict]:
    """({split: figures}, {split: per-query figures}) of popularity over the training watches."""
    corpus = events.videos["video_id"].to_numpy()
    model = Popularity(corpus, examples.train_watches["video_id"].to_numpy())
    return evaluate_candidates(lambda queries, s, e: model.scores(e - s), examples, corpus,
                               evaluation_ks(config), simulated_world(config.data),
                               per_query=True, videos=events.videos,
                               samples=evaluation_samples(examples, config))


def generator_figures(model: typing.Any, examples: CandidateExamples, events: EventTables,
                      config: PipelineConfig,
                      popularity_test: pd.DataFrame) -> tuple[dict, pd.DataFrame]:
    """({split: figures}, test per-query figures) of a trained generator, with the paired
    comparison to popularity on the same test queries in figures["retrieval_vs_popularity"]."""
    from tfrec.evaluation.candidates import compare_per_query
    from tfrec.models.training import query_scorer
    result, per_query = evaluate_candidates(
        query_scorer(model, config.candidate_generation.tower), examples,
        events.videos["video_id"].to_numpy(), evaluation_ks(config),
        simulated_world(config.data), per_query=True, videos=events.videos,
        samples=evaluation_samples(examples, config))
    result["retrieval_vs_popularity"] = compare_per_query(per_query["test"], popularity_test)
    return result, per_query["test"]
