"""A finished run in Python: `load_run("runs/<name>")` gives its config, metrics and trained
Keras models, read from what the stages saved in the run folder (no stage runs again and no
example is read).

    run = tfrec.load_run("runs/movielens_100k")
    run.config               # the PipelineConfig the run used (runs/<name>/config.yaml)
    run.metrics              # metrics.json, as a dict
    run.candidate_generator  # CandidateGenerationModel (a tfrs.Model), trained weights
    run.user_tower           # its Keras sub-model: named features -> u [B, d]
    run.ranker               # RankingModel (a tfrs.Model), or None when the run has no ranker

The models are those the pipeline's own stages hand downstream (the candidate_generation
stage's `load`, and `tfrec.pipeline.stages.ranking.load_ranker`), already built: ready for
summary(), tf.keras.utils.plot_model (needs pydot and Graphviz), predict, and compile + fit to
fine-tune (with a new optimizer: the optimizer's state is not saved).
"""
import dataclasses
import json
import os
import typing

from tfrec.config import PipelineConfig
from tfrec.errors import TfrecError
from tfrec.stages import MARKER, Stage, StageContext, read_marker, stale_stages


class RunError(TfrecError):
    """A folder that is not a run, or a run without the finished stage a model comes from."""


@dataclasses.dataclass(repr=False)
class Run:
    """What `load_run` returns (module docstring)."""

    path: str
    config: typing.Any
    metrics: dict[str, typing.Any]
    candidate_generator: typing.Any
    ranker: typing.Any = None

    @property
    def user_tower(self) -> typing.Any:
        """The generator's user tower (functional Keras model: named features -> u [B, d])."""
        return self.candidate_generator.user_tower

    def __repr__(self) -> str:
        models = "candidate_generator" + (", ranker" if self.ranker is not None else "")
        return f"Run({self.path!r}: {models})"


def _not_a_run(path: str, run_dir: str) -> str:
    """The message for a folder without config.yaml, naming run folders inside it if any."""
    inside = sorted(n for n in os.listdir(run_dir)
                    if os.path.isfile(os.path.join(run_dir, n, "config.yaml")))
    hint = (f"; run folders inside it: {', '.join(os.path.join(path, n) for n in inside)}"
            if inside else "; a run folder is what `tfrec run` writes to <runs-dir>/<name>/")
    return f"{path} is not a run folder: {os.path.join(run_dir, 'config.yaml')} is missing{hint}"


def _require_finished(stages: list[Stage], config: PipelineConfig, path: str, run_dir: str,
                      name: str, extra: str = "") -> None:
    """RunError unless stage `name` finished for the run's config (as did its upstream ones)."""
    config_path = os.path.join(run_dir, "config.yaml")
    finish = (f"finish it with `tfrec run {config_path} --runs-dir {os.path.dirname(run_dir)}`"
              f"{extra}")
    marker = os.path.join(run_dir, name, MARKER)
    if not os.path.exists(marker):
        raise RunError(f"{path}: the {name} stage has not finished ({marker} is missing); "
                       f"{finish}")
    stale = stale_stages(stages, config, run_dir, name)
    if stale:
        raise RunError(f"{path}: the {name} stage's outputs were not made for {config_path} "
                       f"(out of date: {', '.join(stale)}: made for another config or by another "
                       f"version of tfrec's code); {finish}")


def _load_stage_value(load: typing.Callable[[StageContext], typing.Any], config: PipelineConfig,
                      path: str, run_dir: str, name: str,
                      metrics: dict[str, typing.Any]) -> typing.Any:
    """`load(ctx)` of a finished stage, as the pipeline calls it for downstream stages."""
    marker = read_marker(run_dir, name)
    if marker is None:  # checked by _require_finished; gone since
        raise RunError(f"{path}: the {name} stage has not finished")
    ctx = StageContext(config, run_dir, os.path.join(run_dir, name), marker["key"], {}, metrics)
    try:
        return load(ctx)
    except FileNotFoundError as err:
        raise RunError(f"{path}: the {name} stage finished but its saved model is missing "
                       f"({err.filename or err})") from err


def _built(model: typing.Any, inputs: dict[str, typing.Any]) -> typing.Any:
    """`model` after one inference call on a row of padding ("" and 0) shaped like `inputs`
    ({name: Keras input}): a subclassed Keras model counts as built only once called, and
    summary() and plot_model need it built. Inference changes no weight."""
    import tensorflow as tf
    row = {name: tf.zeros([1, *x.shape[1:]], x.dtype) if x.dtype != tf.string else
           tf.fill([1, *x.shape[1:]], "") for name, x in inputs.items()}
    model(row, training=False)
    return model


def load_run(path: str, ranker: bool = True) -> Run:
    """The config, metrics and trained models of the run in folder `path` (runs/<name>).

    Args:
      path: the run folder `tfrec run` wrote (<runs-dir>/<name>).
      ranker: also load the ranker when the run's config has one (False: the generator alone,
        e.g. when the ranking stage has not finished).
    Returns:
      a `Run` (module docstring).
    Raises:
      RunError: `path` is not a run folder, or the stage of a model has not finished for the
        run's config (naming what is missing and where).
    """
    run_dir = os.path.abspath(path)
    if not os.path.isdir(run_dir):
        raise RunError(f"{path}: no such run folder")
    config_path = os.path.join(run_dir, "config.yaml")
    if not os.path.isfile(config_path):
        raise RunError(_not_a_run(path, run_dir))
    from tfrec.config import load_config
    from tfrec.pipeline import STAGES, pipeline_stages
    from tfrec.pipeline.stages.ranking import load_ranker
    config = load_config(config_path)
    if not config.candidate_generation.enabled:
        raise RunError(f"{path}: the run trained no model ('candidate_generation.enabled' is "
                       f"false in {config_path})")
    stages = pipeline_stages()
    _require_finished(stages, config, path, run_dir, "candidate_generation")
    metrics_path = os.path.join(run_dir, "metrics.json")
    try:
        with open(metrics_path) as f:
            metrics = json.load(f)
    except (OSError, ValueError) as err:
        raise RunError(f"{path}: cannot read {metrics_path} ({err})") from err
    generator = _load_stage_value(STAGES.get("candidate_generation").load, config, path, run_dir,
                                  "candidate_generation", metrics)
    _built(generator, generator.user_tower.input)
    trained_ranker = None
    if ranker and config.ranking.enabled:
        _require_finished(stages, config, path, run_dir, "ranking",
                          extra=f", or load the generator alone: load_run({path!r}, ranker=False)")
        trained_ranker = _load_stage_value(load_ranker, config, path, run_dir,
                                           "ranking", metrics)
        _built(trained_ranker, trained_ranker.scorer.input)
    return Run(path, config, metrics, generator, trained_ranker)
