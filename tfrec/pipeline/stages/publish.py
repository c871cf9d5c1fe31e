"""The publish stage: the run's servables (retrieval and, when it ran, the ranker) published as
one version set of export.saved_models_dir."""
import json
import os
import typing

from tfrec.pipeline.registry import register_stage
from tfrec.pipeline.stages.export import export_enabled
from tfrec.stages import Stage, StageContext


def run_publish(ctx: StageContext) -> dict[str, typing.Any]:
    """Publish the run's servables (retrieval and, when it ran, the ranker) as one version set
    of export.saved_models_dir, models.config pinned to it (`tfrec.serving.version_sets`)."""
    from tfrec.serving.version_sets import publish
    staged = dict(ctx.inputs["export"])
    if "ranking" in ctx.inputs and ctx.inputs["ranking"] is not None:
        staged["ranker"] = ctx.inputs["ranking"]
    out = publish(ctx.config.export.saved_models_dir, staged, keep=ctx.config.export.keep_versions,
                  run=ctx.config.name, log=ctx.log)
    ctx.log(f"  published version set {out['version']}: {', '.join(sorted(out['paths']))} "
            f"({out['models_config']})")
    return {"exports": {"version": out["version"], "models": out["paths"],
                        "models_config": out["models_config"]}}


def load_publish(ctx: StageContext) -> dict[str, typing.Any]:
    """The published set; stale (so published again) once a version folder is gone or a
    publish into the same folder was interrupted (its journal is rolled back first)."""
    from tfrec.serving.version_sets import pending
    with open(ctx.path("stage.json")) as f:
        exports = json.load(f)["metrics"]["exports"]
    base = os.path.dirname(os.path.dirname(next(iter(exports["models"].values()))))
    if pending(base):
        raise ValueError(f"an interrupted publish in {base}")
    missing = [p for p in exports["models"].values() if not os.path.isdir(p)]
    if missing:
        raise FileNotFoundError(f"exported version {missing[0]} is gone")
    return exports


STAGE = register_stage(Stage(
    "publish", run_publish, load_publish, depends_on=("export",),
    optional_depends_on=("ranking",), config_sections=("export",), check=load_publish,
    enabled=export_enabled, rank=90))
