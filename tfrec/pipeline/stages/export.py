"""The export stage: the retrieval servables (user tower, brute-force and ScaNN retrieval) saved
into the stage folder with their manifest; the publish stage versions them."""
import hashlib
import os
import typing

import tfrec
from tfrec.config import PipelineConfig, to_dict
from tfrec.pipeline.data_source import corpus as _corpus
from tfrec.pipeline.registry import register_stage
from tfrec.pipeline.stages.candidate_generation import generator_enabled
from tfrec.stages import Stage, StageContext

SERVABLES = "servables"  # saved (unversioned) servables inside the export and ranking folders


def run_export(ctx: StageContext) -> dict[str, typing.Any]:
    """Save the retrieval servables into the stage folder; the publish stage versions them."""
    from tfrec.evaluation.sampling import sample_queries
    from tfrec.features.dataset import padded_features
    from tfrec.serving.candidate_exports import save_candidate_generation
    config, examples, corpus = ctx.config, ctx.inputs["examples"], _corpus(ctx)
    tower, seed = config.candidate_generation.tower, config.evaluation.seed
    # Tuned on validation users, measured on test queries it was never tuned on.
    tuning = sample_queries(examples.validation, config.export.tuning_queries, seed)
    held_out = sample_queries(examples.test, config.export.recall_queries, seed)
    features, held_out_features = (
        padded_features(queries.take(sample.rows), tower.max_history, tower.max_search_tokens)
        for queries, sample in ((examples.validation, tuning), (examples.test, held_out)))
    manifest = {
        "tfrec_version": tfrec.__version__, "run": config.name, "run_dir": ctx.run_dir,
        "events_dir": ctx.run_path("events"), "config": to_dict(config),
        "end_of_training": examples.end_of_training,
        "videos": int(len(corpus)),
        "video_vocabulary_sha256": hashlib.sha256("\n".join(map(str, corpus)).encode()).hexdigest(),
        "retrieval_test": ctx.metrics["retrieval"]["test"],
    }
    out = save_candidate_generation(
        ctx.inputs["candidate_generation"], ctx.path(SERVABLES), features, held_out_features,
        manifest, k=config.export.k, target_recall=config.export.target_recall, log=ctx.log)
    ann = {**out["ann"], "tuning_sample": tuning.describe(),
           "held_out_sample": held_out.describe()}
    ctx.log(f"  ScaNN tuned on {ann['tuning_queries']} validation queries; on "
            f"{ann['queries']} held-out test queries: recall@10 vs exact "
            f"{ann['recall@10_vs_exact']:.4f}, brute force {ann['brute_force_qps']:.0f} q/s, "
            f"ScaNN {ann['scann_qps']:.0f} q/s")
    return {"ann": ann}


def load_export(ctx: StageContext) -> dict[str, str]:
    """{servable name: its saved folder} (not yet versioned; the publish stage versions them)."""
    from tfrec.serving.candidate_exports import NAMES
    paths = {name: ctx.path(SERVABLES, name) for name in NAMES}
    missing = [p for p in paths.values() if not os.path.isdir(p)]
    if missing:
        raise FileNotFoundError(f"saved servable {missing[0]} is gone")
    return paths


def export_enabled(config: PipelineConfig) -> bool:
    """Whether the run saves and publishes servables (the export and publish stages)."""
    return generator_enabled(config) and config.export.enabled


STAGE = register_stage(Stage(
    "export", run_export, load_export, depends_on=("events", "examples", "candidate_generation"),
    config_sections=("export", "evaluation.seed"), check=load_export, version=3,
    enabled=export_enabled, rank=60))
