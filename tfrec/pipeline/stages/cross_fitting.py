"""The cross_fitting stage: one generator per fold of users, for the ranker's training pages
under P1 (`tfrec.models.cross_fitting`)."""
import typing

from tfrec.config import PipelineConfig
from tfrec.pipeline.data_source import corpus as _corpus
from tfrec.pipeline.registry import register_stage
from tfrec.pipeline.stages.candidate_generation import generator_enabled
from tfrec.stages import Stage, StageContext


def run_cross_fitting(ctx: StageContext) -> dict[str, typing.Any]:
    """One generator per fold of users (`tfrec.models.cross_fitting`), for the ranker's training
    pages under P1; trained for the run's chosen number of epochs."""
    from tfrec.models.cross_fitting import fold_examples, train_fold_generators
    from tfrec.models.training import model_artifacts, save_model
    cg, examples, events = ctx.config.candidate_generation, ctx.inputs["examples"], \
        ctx.inputs["events"]
    epochs = ctx.metrics["retrieval"]["best_epoch"]
    folds = train_fold_generators(examples, events.users, _corpus(ctx), cg.tower, cg.softmax,
                                  cg.training, epochs, ks=ctx.config.evaluation.ks, log=ctx.log,
                                  folds=ctx.config.ranking.cross_fit_folds,
                                  validation_users=ctx.config.evaluation.validation_users,
                                  sample_seed=ctx.config.evaluation.seed)
    for k, (model, _) in enumerate(folds):
        save_model(model, ctx.path(f"fold{k}", "model"), model_artifacts(
            fold_examples(examples, k, len(folds)), events.users, _corpus(ctx)))
    return {"cross_fitting": {"folds": len(folds), "epochs": epochs, "validation": [
        {m: r["validation"][m] for m in ("recall@10", "map@100", "queries")}
        for _, r in folds]}}


def load_cross_fitting(ctx: StageContext) -> list[typing.Any]:
    """[model per fold]."""
    from tfrec.models.training import load_model
    cg = ctx.config.candidate_generation
    return [load_model(ctx.path(f"fold{k}", "model"), cg.tower, cg.softmax,
                       seed=cg.training.seed) for k in range(ctx.config.ranking.cross_fit_folds)]


def cross_fitting_enabled(config: PipelineConfig) -> bool:
    """Under P1 with cg_score only: P3's ranker trains on a window no generator saw, and a
    ranker without cg_score does not read the generator's score."""
    return (generator_enabled(config) and config.ranking.enabled
            and config.ranking.cross_fit_folds > 1 and config.evaluation.protocol == "p1"
            and "cg_score" in config.ranking.model.features)


STAGE = register_stage(Stage(
    "cross_fitting", run_cross_fitting, load_cross_fitting,
    depends_on=("events", "examples", "candidate_generation"),
    config_sections=("ranking.cross_fit_folds",), enabled=cross_fitting_enabled, version=2,
    rank=70))
