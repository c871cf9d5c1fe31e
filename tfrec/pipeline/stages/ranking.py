"""The ranking stage: the weighted-logistic ranker for expected watch time, trained on the pages
of `tfrec.pipeline.ranking_pages`, tested against the generator's order, saved (and, when the
run exports, saved as a servable the publish stage versions)."""
import os
import typing

import tfrec
from tfrec.config import PipelineConfig
from tfrec.pipeline.ranking_pages import ranking_splits
from tfrec.pipeline.registry import register_stage
from tfrec.pipeline.stages.candidate_generation import generator_enabled
from tfrec.pipeline.stages.export import SERVABLES
from tfrec.stages import Stage, StageContext

RANKER_WEIGHTS = "weights/ranker"  # TensorFlow checkpoint prefix inside the ranking folder


def run_ranking(ctx: StageContext) -> dict[str, typing.Any]:
    from tfrec.models.ranking import ranking_artifacts
    from tfrec.models.ranking_training import ranking_features, train_ranker
    from tfrec.models.training import save_model
    from tfrec.serving.ranker_export import save_ranker
    config, rk = ctx.config, ctx.config.ranking
    (train, validation, test), source = ranking_splits(ctx)
    ctx.log(f"  impressions: train {len(train)}, validation {len(validation)}, test {len(test)} "
            f"({source})")
    true_column = rk.true_expected_column if rk.true_expected_column in test.columns else None
    video_ids = ctx.inputs["events"].videos["video_id"].to_numpy()
    model, result = train_ranker(train, validation, rk.model, video_ids, test, true_column,
                                 log=ctx.log)
    # Saved whether or not the run exports, so `tfrec.load_run` gives the trained Keras ranker.
    save_model(model, ctx.path(RANKER_WEIGHTS), ranking_artifacts(rk.model, train, video_ids))
    from tfrec.evaluation.ranking import compare_orders, evaluate_ranking
    from tfrec.models.ranking_training import predict_ranker
    baselines = {}
    if "cg_score" in test.columns:
        baselines["candidate_generation_score"] = evaluate_ranking(test, test["cg_score"])
        # Generator order minus ranker order (the ranker orders by its logit), paired by page.
        result["ranker_vs_generator_order"] = compare_orders(
            test, predict_ranker(model, test)["logit"], test["cg_score"])
        # The same on validation: what a user may look at to choose settings without test.
        result["validation_ranker_vs_generator_order"] = compare_orders(
            validation, predict_ranker(model, validation)["logit"], validation["cg_score"])
    if true_column:
        baselines["oracle_true_expected_watch_time"] = evaluate_ranking(test, test[true_column])
    result.update(source=source, impressions={"train": len(train), "validation": len(validation),
                                              "test": len(test)}, baselines=baselines)
    ctx.log("  test weighted per-user loss {:.4f}, click AUC {:.4f}".format(
        result["test"]["weighted_per_user_loss"], result["test"]["click_auc"]))
    if config.export.enabled:  # saved here; the publish stage versions it with the others
        features = ranking_features(validation, list(model.scorer.input), rk.model.max_history)
        manifest = {"tfrec_version": tfrec.__version__, "run": config.name,
                    "run_dir": ctx.run_dir, "ranking_test": result["test"]}
        save_ranker(model, ctx.path(SERVABLES, "ranker"), features, manifest)
    return {"ranking": result}


def load_ranking(ctx: StageContext) -> str | None:
    """The saved ranker servable's folder, or None when the export is off."""
    path = ctx.path(SERVABLES, "ranker")
    return path if os.path.isdir(path) else None


def load_ranker(ctx: StageContext) -> typing.Any:
    """The trained RankingModel, from its weights and artifacts alone (no ranking example is
    read)."""
    from tfrec.models.ranking_training import load_ranker as load
    if not os.path.exists(ctx.path(RANKER_WEIGHTS + ".index")):
        raise FileNotFoundError(ctx.path(RANKER_WEIGHTS + ".index"))
    return load(ctx.path(RANKER_WEIGHTS), ctx.config.ranking.model)


def ranking_enabled(config: PipelineConfig) -> bool:
    """Whether the run trains a ranker (it ranks the generator's candidates: needs one)."""
    return generator_enabled(config) and config.ranking.enabled


STAGE = register_stage(Stage(
    "ranking", run_ranking, load_ranking, depends_on=("events", "examples", "candidate_generation"),
    optional_depends_on=("cross_fitting",), config_sections=("ranking", "export.enabled"),
    version=5, enabled=ranking_enabled, rank=80))
