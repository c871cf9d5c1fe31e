"""`run_pipeline`: run (or load from cache) every registered stage of a config in one run folder,
under its lock, writing config.yaml, run.log, metrics.json (as it grows) and the report."""
import os
import time
import typing

import yaml

from tfrec.config import PipelineConfig, check_against_data, to_dict
from tfrec.pipeline.registry import pipeline_stages
from tfrec.run_lock import run_folder_lock
from tfrec.stages import run_stages, write_json_atomic

Log = typing.Callable[[str], None]


def _also_to_file(log: Log, path: str) -> Log:
    """`log`, also appending each line (time-stamped) to the run's log file."""
    def both(message: str) -> None:
        with open(path, "a") as f:
            f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}\n")
        log(message)
    return both


def run_pipeline(config: PipelineConfig, runs_dir: str = "runs", log: Log = print,
                 force: typing.Sequence[str] = (), progress: bool = False,
                 report: bool = True) -> dict[str, typing.Any]:
    """Run (or load from cache) every stage of `config`, then write metrics.json and the report.

    Args:
      force: stage names to redo, with everything downstream of them.
      progress: draw progress bars.
      report: write report.md and plots/ (needs matplotlib).
    Returns:
      the metrics dict (also in runs/<name>/metrics.json).
    """
    run_dir = os.path.join(os.path.abspath(runs_dir), config.name)
    os.makedirs(run_dir, exist_ok=True)
    with run_folder_lock(run_dir):
        return _run_locked(config, run_dir, log, force, progress, report)


def _write_config(run_dir: str, config: PipelineConfig) -> None:
    """runs/<name>/config.yaml, rewritten only when it changed."""
    path, text = os.path.join(run_dir, "config.yaml"), yaml.safe_dump(to_dict(config),
                                                                       sort_keys=False)
    if os.path.exists(path):
        with open(path) as f:
            if f.read() == text:
                return
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.replace(path + ".tmp", path)


def _run_locked(config: PipelineConfig, run_dir: str, log: Log, force: typing.Sequence[str],
                progress: bool, report: bool) -> dict[str, typing.Any]:
    _write_config(run_dir, config)
    log = _also_to_file(log, os.path.join(run_dir, "run.log"))
    start = time.perf_counter()

    def save_metrics(metrics: dict[str, typing.Any], stages: dict[str, typing.Any]) -> None:
        metrics["timings_s"] = {name: s["compute_seconds"] for name, s in stages.items()}
        metrics["stages"] = stages
        metrics["run_seconds"] = round(time.perf_counter() - start, 3)
        write_json_atomic(os.path.join(run_dir, "metrics.json"), metrics)
        check_against_data(config, metrics)  # as soon as the data's facts are known

    _, metrics, stages = run_stages(pipeline_stages(), config, run_dir, force=force, log=log,
                                    progress=progress, after_each=save_metrics)
    save_metrics(metrics, stages)
    report_path = os.path.join(run_dir, "report.md")
    if report and all(s["cached"] for s in stages.values()) and os.path.exists(report_path):
        log(f"report: {report_path} (every stage cached: unchanged)")
    elif report:
        from tfrec.evaluation.report import write_report
        write_report(run_dir, config, metrics)
        log(f"report: {report_path}")
    log(f"metrics: {os.path.join(run_dir, 'metrics.json')}  "
        f"({metrics['run_seconds']:.1f}s)")
    return metrics
