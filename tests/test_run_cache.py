"""Runs as a product: cached stages, --force, atomic stage outputs, the report, SIGKILL resume."""
import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from conftest import make_events, three_taste_watches
from tiny_pipeline import write_tiny_pipeline
from tfrec.config import ConfigError, PipelineConfig, load_config
from tfrec.data.schema import write_events
from tfrec.evaluation.report import write_report
from tfrec.pipeline import evaluation_ks, run_pipeline
from tfrec.stages import Stage, run_stages



@pytest.fixture(scope="module")
def tiny_config(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    watches = three_taste_watches()
    write_events(make_events(watches), str(root / "events"))
    path = root / "tiny.yaml"
    write_tiny_pipeline(path, root / "events", root / "saved_models",
                        {"candidate_generation": {"training": {"epochs": 3}},
                         "export": {"enabled": False}})
    return load_config(str(path))


def _run(config, runs_dir, **kwargs):
    lines = []
    metrics = run_pipeline(config, runs_dir=str(runs_dir), log=lines.append, **kwargs)
    ran = {line.split("]")[0][1:] for line in lines if line.endswith(")") and "running" in line}
    cached = {line.split("]")[0][1:] for line in lines if "] cached (hash" in line}
    return metrics, ran, cached


def _figures(metrics):
    """The metrics without this invocation's bookkeeping (what caching must preserve)."""
    return {k: v for k, v in metrics.items() if k not in ("stages", "run_seconds")}


def test_stages_are_cached_keyed_by_config_and_forced(tiny_config, tmp_path):
    exporting = tiny_config.model_copy(update={
        "export": tiny_config.export.model_copy(update={"enabled": True})})
    first, ran, cached = _run(exporting, tmp_path)
    stages = {"events", "examples", "popularity", "candidate_generation", "export", "publish"}
    assert ran == stages and not cached
    again, ran, cached = _run(exporting, tmp_path)
    assert cached == stages and not ran
    assert _figures(again) == _figures(first)
    assert all(s["cached"] for s in again["stages"].values())

    # A changed section reruns its stage only: here the export, from the cached model
    # (rebuilt from the data and its saved weights).
    fewer = exporting.model_copy(update={"export": exporting.export.model_copy(update={"k": 5})})
    exported, ran, cached = _run(fewer, tmp_path)
    assert ran == {"export", "publish"} and cached == stages - {"export", "publish"}
    manifest = json.loads(open(os.path.join(exported["exports"]["models"]["user_tower"],
                                            "manifest.json")).read())
    assert manifest["k"] == 5 and manifest["retrieval_test"] == first["retrieval"]["test"]
    # The new set is one number for every servable, the next after the first run's.
    assert exported["exports"]["version"] == first["exports"]["version"] + 1 == manifest["version"]
    from tfrec.models.training import evaluate_model, load_model
    from tfrec.pipeline.stages.examples import load_examples
    from tfrec.stages import StageContext
    ctx = lambda stage: StageContext(exporting, str(tmp_path / "tiny"),  # noqa: E731
                                     str(tmp_path / "tiny" / stage), "", {}, {})
    examples = load_examples(ctx("examples"))
    cg = exporting.candidate_generation
    # The model loads from its weights and artifacts alone: no training data is read.
    model = load_model(str(tmp_path / "tiny" / "candidate_generation" / "weights" / "model"),
                       cg.tower, cg.softmax)
    reloaded = evaluate_model(model, examples.test, cg.tower, evaluation_ks(exporting))
    for name, value in first["retrieval"]["test"].items():
        assert reloaded[name] == pytest.approx(value, abs=1e-9), name

    # The report: every section, and the plots it links exist as PNG images.
    report = (tmp_path / "tiny" / "report.md").read_text()
    for title in ("## Run: time per stage and config", "## Data",
                  "## Candidate generation vs popularity",
                  "## Training", "## Serving: ANN recall and speed"):
        assert title in report
    assert "(docs/PROTOCOL.md P1)" in report  # the report names the protocol of its figures
    assert "## Ranking" not in report
    # Retrieval against popularity on the same test queries, with paired-bootstrap intervals.
    paired = first["retrieval"]["retrieval_vs_popularity"]
    assert set(paired) == {"recall@10", "recall@100", "ndcg@10", "map@100"}
    ret, pop = first["retrieval"]["test"], first["popularity"]["test"]
    for name, figure in paired.items():
        assert figure["difference"] == pytest.approx(ret[name] - pop[name], abs=1e-12)
        assert figure["ci95"][0] <= figure["difference"] <= figure["ci95"][1]
    # Users here re-watch often (12 watches of 10 videos): those test targets are not scored.
    skipped = ret["rewatch_targets_skipped"]
    assert ret["queries"] + skipped == 30 and skipped > 0
    assert (pop["queries"], pop["rewatch_targets_skipped"]) == (ret["queries"], skipped)
    assert "difference [95% interval]" in report
    assert f"test {ret['queries']} scored, {skipped} re-watch targets skipped" in report
    for png in ("timings", "recall_at_k", "training_curves", "ann"):
        assert f"(plots/{png}.png)" in report
        assert (tmp_path / "tiny" / "plots" / f"{png}.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "tiny" / "tensorboard" / "projector" / "metadata.tsv").read_text() \
        .splitlines()[0] == "video_id\ttitle"

    # A changed upstream section reruns everything downstream of it (no training here).
    light = exporting.model_copy(update={
        "candidate_generation": cg.model_copy(update={"enabled": False}),
        "export": exporting.export.model_copy(update={"enabled": False})})
    _, ran, cached = _run(light.model_copy(update={
        "examples": light.examples.model_copy(update={"min_history": 2})}), tmp_path)
    assert cached == {"events"} and ran == {"examples", "popularity"}
    # --force redoes a stage and everything downstream of it.
    _, ran, cached = _run(light, tmp_path, force=("events",))
    assert ran == {"events", "examples", "popularity"} and not cached
    with pytest.raises(ConfigError, match="unknown stage 'exampels'; did you mean 'examples'"):
        run_pipeline(light, runs_dir=str(tmp_path), log=lambda *_: None, force=("exampels",))


def test_report_shows_a_later_stage_generically(tiny_config, tmp_path):
    metrics = {"ranking": {"test": {"weighted_per_user_loss": 0.347, "auc": 0.71},
                           "epochs": 4, "history": [1, 2]}}
    write_report(str(tmp_path), tiny_config, metrics)
    report = (tmp_path / "report.md").read_text()
    assert "## Ranking" in report and "| ranking.test.auc | 0.71 |" not in report
    assert "| test.auc | 0.7100 |" in report and "| epochs | 4 |" in report
    assert "history" not in report.split("## Ranking")[1].split("\n## ")[0]


def test_a_failing_stage_leaves_no_output_and_earlier_stages_stay_cached(tmp_path):
    calls = []

    def write(name):
        def run(ctx):
            calls.append(name)
            with open(ctx.path("out.txt"), "w") as f:
                f.write(name)
            if name == "second" and len(calls) < 3:
                raise RuntimeError("boom")
            return {name: 1}
        return run

    stages = [Stage("first", write("first"), lambda ctx: open(ctx.path("out.txt")).read()),
              Stage("second", write("second"), lambda ctx: None, depends_on=("first",))]
    config = PipelineConfig(name="toy")
    with pytest.raises(RuntimeError, match="boom"):
        run_stages(stages, config, str(tmp_path), log=lambda *_: None)
    assert sorted(os.listdir(tmp_path)) == ["first"]  # no half-written "second", no temp folder
    values, metrics, report = run_stages(stages, config, str(tmp_path), log=lambda *_: None)
    assert calls == ["first", "second", "second"] and values["first"] == "first"
    assert report["first"]["cached"] and not report["second"]["cached"]
    assert metrics == {"first": 1, "second": 1}


RESUME = """name: resume
examples:
  max_examples_per_user: 20
candidate_generation:
  tower:
    embedding_dim: 16
    hidden_units: [32, 16]
    dropout: 0.2
  softmax:
    num_negatives: 64
    use_bias: true
  training:
    epochs: 3
    patience: 10
    batch_size: 256
export:
  enabled: false
"""


def _tfrec(*args):
    return [sys.executable, "-m", "tfrec.cli", "run", *args]


def _comparable(metrics):
    """Everything training produced except wall-clock figures."""
    retrieval = dict(metrics["retrieval"])
    retrieval.pop("train_examples_per_second")
    retrieval["history"] = [{k: v for k, v in h.items() if "seconds" not in k}
                            for h in retrieval["history"]]
    return retrieval


def test_a_run_killed_during_training_resumes_to_the_same_metrics(tmp_path, ml100k_dir):
    config = tmp_path / "resume.yaml"
    config.write_text(RESUME)
    # The uninterrupted reference runs in this process (one TensorFlow start-up fewer); the
    # killed and the resumed runs are real `tfrec run` processes.
    run_pipeline(load_config(str(config)), runs_dir=str(tmp_path / "whole"),
                 log=lambda *_: None, report=False)

    runs = tmp_path / "killed"
    proc = subprocess.Popen(_tfrec(str(config), "--runs-dir", str(runs)),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    checkpoints = runs / "resume" / "checkpoints"

    def epoch_1_saved():
        # The manager writes its `checkpoint` state file after the ckpt-1 files: kill only once a
        # resume can find it (killing between the two would restart from scratch, rightly).
        return checkpoints.exists() and any("ckpt-1" in p.read_text(errors="ignore")
                                            for p in checkpoints.rglob("checkpoint"))
    while time.time() < deadline and proc.poll() is None and not epoch_1_saved():
        time.sleep(0.05)
    assert epoch_1_saved(), "the run never checkpointed epoch 1"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    # Killed mid-training: no finished stage, no temporary folder left in the way.
    assert not (runs / "resume" / "candidate_generation").exists()

    resumed = subprocess.run(_tfrec(str(config), "--runs-dir", str(runs)),
                             capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    quiet = subprocess.run(_tfrec(str(config), "--runs-dir", str(runs), "--quiet"),
                           capture_output=True, text=True)
    assert quiet.returncode == 0 and quiet.stdout == "", quiet.stderr[-2000:]
    assert "[examples] cached (hash" in resumed.stdout
    assert re.search(r"resumed from .*\(epoch [12]\)", resumed.stdout), resumed.stdout
    expected = json.loads((tmp_path / "whole" / "resume" / "metrics.json").read_text())
    got = json.loads((runs / "resume" / "metrics.json").read_text())
    a, b = _comparable(expected), _comparable(got)
    assert a.keys() == b.keys() and len(a["history"]) == len(b["history"]) == 3
    for key in ("test", "validation"):
        for name, value in a[key].items():
            assert b[key][name] == pytest.approx(value, abs=1e-6), (key, name)
    for x, y in zip(a["history"], b["history"]):
        for name, value in x.items():
            assert y[name] == pytest.approx(value, abs=1e-6), (x["epoch"], name)
