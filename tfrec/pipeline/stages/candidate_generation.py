"""The candidate_generation stage: the deep candidate generator, trained, evaluated against
popularity on the same queries, and saved (weights and artifacts) in its folder."""
import os
import shutil
import typing

from tfrec.config import PipelineConfig
from tfrec.pipeline.data_source import corpus as _corpus
from tfrec.pipeline.registry import register_stage
from tfrec.pipeline.retrieval_figures import (evaluation_ks, figures_log_line, generator_figures,
                                              write_per_query)
from tfrec.stages import Stage, StageContext

WEIGHTS = "weights/model"  # TensorFlow checkpoint prefix inside the stage folder


def generator_enabled(config: PipelineConfig) -> bool:
    """Whether the run trains a generator (the stages that need one are off otherwise)."""
    return config.candidate_generation.enabled


def run_candidate_generation(ctx: StageContext) -> dict[str, typing.Any]:
    from tfrec.models.training import model_artifacts, save_model, train_candidate_generation
    from tfrec.evaluation.projector import write_projector
    cg, examples = ctx.config.candidate_generation, ctx.inputs["examples"]
    events = ctx.inputs["events"]
    # Checkpoints are keyed like the stage: a changed config never resumes another's training.
    checkpoints = ctx.run_path("checkpoints", f"candidate_generation-{ctx.key[:12]}")
    if ctx.forced:  # --force means train again, not resume the finished run's checkpoint
        shutil.rmtree(checkpoints, ignore_errors=True)
    model, result = train_candidate_generation(
        examples, events.users, _corpus(ctx), cg.tower, cg.softmax, cg.training,
        ks=evaluation_ks(ctx.config), log=ctx.log, checkpoint_dir=checkpoints,
        tensorboard_dir=ctx.run_path("tensorboard", "candidate_generation"),
        progress=ctx.progress, validation_users=ctx.config.evaluation.validation_users,
        sample_seed=ctx.config.evaluation.seed)
    figures, per_query = generator_figures(model, examples, events, ctx.config,
                                           ctx.inputs["popularity"])
    result.update(figures)  # validation and test at the chosen epoch, with truth and freshness
    write_per_query(ctx, per_query)
    save_model(model, ctx.path(WEIGHTS), model_artifacts(examples, events.users, _corpus(ctx)))
    write_projector(ctx.run_path("tensorboard", "projector"), model, events.videos)
    ctx.log(figures_log_line(result["test"]))
    ctx.log("  test recall@10 vs popularity {difference:+.4f} (95% CI {ci95[0]:+.4f}, "
            "{ci95[1]:+.4f})".format(**result["retrieval_vs_popularity"]["recall@10"]))
    return {"retrieval": result}


def load_candidate_generation(ctx: StageContext) -> typing.Any:
    """The trained model, from its weights and artifacts alone (no training data is read)."""
    from tfrec.models.training import load_model
    cg = ctx.config.candidate_generation
    if not os.path.exists(ctx.path(WEIGHTS + ".index")):
        raise FileNotFoundError(ctx.path(WEIGHTS + ".index"))
    return load_model(ctx.path(WEIGHTS), cg.tower, cg.softmax, seed=cg.training.seed)


# Depends on popularity for the paired comparison in its metrics.
STAGE = register_stage(Stage(
    "candidate_generation", run_candidate_generation, load_candidate_generation,
    depends_on=("events", "examples", "popularity"),
    config_sections=("evaluation", "candidate_generation"), version=6, enabled=generator_enabled,
    rank=40))
