"""The compare_protocol stage: popularity and the run's generator config under the other
protocol (`evaluation.compare_protocol`), so that one report shows both."""
import typing

from tfrec.config import PipelineConfig
from tfrec.features.local_driver import build_candidate_examples
from tfrec.pipeline.data_source import corpus as _corpus
from tfrec.pipeline.registry import register_stage
from tfrec.pipeline.retrieval_figures import (evaluation_ks, figures_log_line, generator_figures,
                                              popularity_figures)
from tfrec.pipeline.stages.candidate_generation import generator_enabled
from tfrec.stages import Stage, StageContext


def run_compare_protocol(ctx: StageContext) -> dict[str, typing.Any]:
    """Popularity and a generator (the run's config, trained again, not exported) under
    `evaluation.compare_protocol`: the same report then shows P1 (or P2) and P3."""
    from tfrec.models.training import train_candidate_generation
    config, events = ctx.config, ctx.inputs["events"]
    cg, other = config.candidate_generation, config.evaluation.compare_protocol
    protocol = config.evaluation.model_copy(update={"protocol": other})
    examples = build_candidate_examples(events, config.examples, protocol=protocol)
    ctx.log(f"  {other} examples {examples.counts()}")
    popularity, pop_rows = popularity_figures(examples, events, config)
    model, result = train_candidate_generation(
        examples, events.users, _corpus(ctx), cg.tower, cg.softmax, cg.training,
        ks=evaluation_ks(config), log=ctx.log,
        validation_users=config.evaluation.validation_users, sample_seed=config.evaluation.seed)
    figures, _ = generator_figures(model, examples, events, config, pop_rows["test"])
    result.update(figures)
    ctx.log(figures_log_line(result["test"]))
    return {"compare_protocol": {
        "protocol": other, "examples": {**examples.counts(), "p3_windows": (
            examples.windows.to_dict() if examples.windows else None)},
        "popularity": popularity, "retrieval": result}}


def load_compare_protocol(ctx: StageContext) -> None:
    """Nothing: no stage reads this one's outputs (its figures are in metrics.json)."""
    return None


def compare_protocol_enabled(config: PipelineConfig) -> bool:
    """Whether the run also evaluates under the other protocol (its config names one)."""
    return generator_enabled(config) and config.evaluation.compare_protocol is not None


STAGE = register_stage(Stage(
    "compare_protocol", run_compare_protocol, load_compare_protocol, depends_on=("events",),
    config_sections=("examples", "evaluation", "candidate_generation"),
    enabled=compare_protocol_enabled, version=2, rank=50))
