"""The stage registry: one module per stage, the run order from the declared dependencies, a new
stage added as one file runs in `tfrec run` and its metrics reach metrics.json."""
import itertools
import json
import sys

import pytest

import tfrec.pipeline.stages as stages_package
from conftest import make_events, three_taste_watches
from tfrec import cli
from tfrec.config import load_config
from tfrec.data.schema import write_events
from tfrec.pipeline import STAGES, pipeline_stages, run_pipeline
from tfrec.pipeline.registry import run_order
from tfrec.stages import Stage
from tiny_pipeline import write_tiny_pipeline

SHIPPED_ORDER = ["events", "examples", "popularity", "candidate_generation", "compare_protocol",
                 "export", "cross_fitting", "ranking", "publish"]

# A stage as a user would add it: this one file, nothing else edited (the test puts it in a
# folder on the package's path; in the repository it is tfrec/pipeline/stages/<name>.py).
TOY_STAGE = '''"""history_lengths: the longest training history (a toy stage)."""
import json

from tfrec.pipeline.registry import register_stage
from tfrec.stages import Stage


def run(ctx):
    longest = int(ctx.inputs["examples"].train["watch_history"].lengths.max())
    with open(ctx.path("lengths.json"), "w") as f:
        json.dump({"longest": longest}, f)
    return {"history_lengths": {"longest": longest,
                                "train_examples": len(ctx.inputs["examples"].train)}}


def load(ctx):
    with open(ctx.path("lengths.json")) as f:
        return json.load(f)


STAGE = register_stage(Stage("history_lengths", run, load, depends_on=("examples",),
                             config_sections=("examples",)))
'''


def _stage(name, *deps, rank=100, optional=()):
    return Stage(name, run=lambda ctx: {}, load=lambda ctx: None, depends_on=deps,
                 optional_depends_on=optional, rank=rank)


def test_the_shipped_stages_run_in_their_dependency_order():
    stages = pipeline_stages()
    assert [s.name for s in stages] == SHIPPED_ORDER
    assert STAGES.names() == tuple(sorted(SHIPPED_ORDER))
    seen = set()
    for stage in stages:
        assert set(stage.depends_on) | set(stage.optional_depends_on) <= seen, stage.name
        assert stage.run.__module__ == f"tfrec.pipeline.stages.{stage.name}"
        seen.add(stage.name)


def test_the_order_is_deterministic_and_respects_dependencies():
    stages = [_stage("a"), _stage("b", "a", rank=5), _stage("c", "a", rank=1),
              _stage("d", "b", optional=("c",)), _stage("e")]
    orders = {tuple(s.name for s in run_order(list(p))) for p in itertools.permutations(stages)}
    # One order whatever the input order: c before b (lower rank), e (rank ties: by name) after
    # a, d after both its dependencies.
    assert orders == {("a", "c", "b", "d", "e")}
    with pytest.raises(ValueError, match="stage 'b' depends on unknown stage 'z'"):
        run_order([_stage("a"), _stage("b", "z")])
    with pytest.raises(ValueError, match=r"the stages \['a', 'b', 'c'\] cannot be ordered"):
        run_order([_stage("a", "b"), _stage("b", "a"), _stage("c", "a")])


def test_a_stage_must_live_in_the_module_named_after_it():
    with pytest.raises(ValueError, match="must be defined in module "
                                         "tfrec.pipeline.stages.elsewhere"):
        STAGES.add(_stage("elsewhere"))
    with pytest.raises(ValueError, match=r"unknown stage 'exampels'; choose from \("):
        STAGES.get("exampels")


@pytest.fixture
def toy_stage(tmp_path, monkeypatch):
    """The toy stage's module in a folder on the stages package's path (undone afterwards)."""
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "history_lengths.py").write_text(TOY_STAGE)
    monkeypatch.setattr(stages_package, "__path__", [*stages_package.__path__, str(folder)])
    monkeypatch.delitem(sys.modules, "tfrec.pipeline.stages.history_lengths", raising=False)
    yield "history_lengths"
    sys.modules.pop("tfrec.pipeline.stages.history_lengths", None)


@pytest.fixture
def light_config(tmp_path):
    """The tiny pipeline without training: events, examples, popularity (seconds)."""
    write_events(make_events(three_taste_watches()), str(tmp_path / "events"))
    return write_tiny_pipeline(tmp_path / "light.yaml", tmp_path / "events",
                               tmp_path / "saved_models",
                               {"candidate_generation": {"enabled": False},
                                "export": {"enabled": False}})


def test_a_stage_added_as_one_module_runs_after_its_dependency(toy_stage, light_config,
                                                                tmp_path, capsys):
    # Free to run after examples; its default rank (100) puts it after the shipped stages.
    assert [s.name for s in pipeline_stages()] == [*SHIPPED_ORDER, toy_stage]
    lines = []
    metrics = run_pipeline(load_config(light_config), runs_dir=str(tmp_path / "runs"),
                           log=lines.append, report=False)
    ran = [line.split("]")[0][1:] for line in lines if "] running (hash" in line]
    assert ran == ["events", "examples", "popularity", toy_stage]
    on_disk = json.loads((tmp_path / "runs" / "tiny" / "metrics.json").read_text())
    # Its figures are real: 30 users x 12 watches, histories capped at examples.max_history 5.
    assert on_disk[toy_stage] == metrics[toy_stage] == {
        "longest": 5, "train_examples": metrics["examples"]["train"]}
    assert metrics["examples"]["train"] > 0 and toy_stage in on_disk["timings_s"]

    # The command runs it too, and --force takes its name (redoing it alone: nothing is after).
    code = cli.main(["run", light_config, "--runs-dir", str(tmp_path / "runs"),
                     "--force", toy_stage])
    out = capsys.readouterr().out
    assert code == 0
    assert f"[{toy_stage}] running" in out and "[examples] cached" in out
    assert "] running" not in out.replace(f"[{toy_stage}] running", "")


def test_an_unknown_stage_in_force_is_a_clear_error(light_config, tmp_path, capsys):
    code = cli.main(["run", light_config, "--runs-dir", str(tmp_path / "runs"),
                     "--force", "exampels"])
    assert code == 2
    err = capsys.readouterr().err
    assert "--force: unknown stage 'exampels'; did you mean 'examples'?" in err
    assert "'publish'" in err  # the message lists the stages
    assert not (tmp_path / "runs").exists()  # refused before anything ran
