import json
import os
import re
import subprocess
import sys

import pytest

from tfrec.config import ConfigError, load_config
from tfrec.pipeline import run_pipeline

MAIN = "pipelines/movielens_100k.yaml"


def _write(tmp_path, text):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return str(path)


def test_main_config_loads():
    config = load_config(MAIN)
    assert config.name == "movielens_100k" and config.examples.max_history == 50


@pytest.mark.parametrize("text,message", [
    ("name: x\nexamples:\n  max_histroy: 3\n",
     "unknown key 'examples.max_histroy'; did you mean 'examples.max_history'?"),
    ("name: x\ncolour: red\n", "unknown key 'colour'"),
    ("name: x\nexamples:\n  max_history: fifty\n", "'examples.max_history' must be int"),
    ("name: x\nexamples:\n  max_history: true\n", "'examples.max_history' must be int"),
    ("name: x\nevaluation:\n  ks: 10\n", "'evaluation.ks' must be a list"),
    ("data:\n  format: recbole\n", "missing key 'name'"),
    ("name: ../escape\n", "'name' '../escape' must be"),
    ("name: x\ndata:\n  format: csv\n", "'data.format' must be one of"),
    ("name: x\ndata:\n  format: tfds\n", "'data.tfds_data_dir' is required"),
    ("name: x\nexamples: [1, 2]\n", "'examples' must be a mapping"),
    ("name: [unclosed\n", "not valid YAML"),
])
def test_bad_configs_name_the_key(tmp_path, text, message):
    with pytest.raises(ConfigError) as err:
        load_config(_write(tmp_path, text))
    assert message in str(err.value) and "c.yaml" in str(err.value)


def test_cli_reports_config_errors_without_a_traceback(tmp_path):
    path = _write(tmp_path, "name: x\nexampels: {}\n")
    out = subprocess.run([sys.executable, "-m", "tfrec.cli", "run", path, "--runs-dir",
                          str(tmp_path)], capture_output=True, text=True)
    assert out.returncode == 2
    assert "unknown key 'exampels'; did you mean 'examples'?" in out.stderr
    assert "Traceback" not in out.stderr


def test_config_show_fills_defaults():
    out = subprocess.run([sys.executable, "-m", "tfrec.cli", "config", "show", MAIN],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "max_search_queries: 50" in out.stdout


def _quick(config, saved_models, epochs=2):
    """The main config with a short training schedule (the full run belongs to `make run`)."""
    cg = config.candidate_generation
    ranking = config.ranking
    return config.model_copy(update={
        "candidate_generation": cg.model_copy(update={
            "training": cg.training.model_copy(update={"epochs": epochs})}),
        "export": config.export.model_copy(update={"saved_models_dir": str(saved_models)}),
        "ranking": ranking.model_copy(update={
            "retrieved_impressions": ranking.retrieved_impressions.model_copy(
                update={"max_train_pages": 3000}),
            "model": ranking.model.model_copy(update={"epochs": 1})})})


@pytest.fixture(scope="module")
def main_run(tmp_path_factory, ml100k_dir):
    """(config, metrics, runs folder) of the main pipeline with a short schedule, run once for
    the tests of this module that read its outputs."""
    tmp_path = tmp_path_factory.mktemp("main")
    config = _quick(load_config(MAIN), tmp_path / "saved_models")
    return config, run_pipeline(config, runs_dir=str(tmp_path), log=lambda *_: None), tmp_path


def test_main_pipeline_end_to_end(main_run):
    config, metrics, tmp_path = main_run
    on_disk = json.loads((tmp_path / "movielens_100k" / "metrics.json").read_text())
    assert on_disk["data"]["watches"] == 100_000 and on_disk["data"]["users"] == 943
    assert on_disk["popularity"] == json.loads(json.dumps(metrics["popularity"]))
    test = on_disk["popularity"]["test"]
    assert test["queries"] == 943 and 0.05 < test["recall@10"] < test["recall@50"] < \
        test["recall@100"] < 1
    assert set(on_disk["timings_s"]) == {"events", "examples", "popularity",
                                         "candidate_generation", "compare_protocol",
                                         "export", "cross_fitting", "ranking", "publish"}
    # The same report also shows P3: one cut for everyone, a generator trained before it.
    p3 = on_disk["compare_protocol"]
    windows = p3["examples"]["p3_windows"]
    assert p3["protocol"] == "p3" and windows["validation_start"] < windows["test_start"]
    assert 50 < p3["retrieval"]["test"]["queries"] == p3["popularity"]["test"]["queries"] < 150
    assert "ci95" in p3["retrieval"]["retrieval_vs_popularity"]["recall@10"]
    report = (tmp_path / "movielens_100k" / "report.md").read_text()
    assert "## The other protocol" in report and "global time split (docs/PROTOCOL.md P3)" in report
    # P1: the ranker's training pages come from generators that never saw their users.
    assert on_disk["cross_fitting"]["folds"] == 2
    assert "cross-fitted" in on_disk["ranking"]["source"]
    assert on_disk["ranking"]["impressions"]["test"] > 1000
    assert on_disk["ann"]["recall@10_vs_exact"] > 0.99  # small corpus: ScaNN scores exactly
    # One version set: every servable, the ranker included, at one number, pinned in models.config.
    exports = on_disk["exports"]
    assert sorted(exports["models"]) == ["ranker", "retrieval_brute_force", "retrieval_scann",
                                         "user_tower"]
    assert {os.path.basename(p) for p in exports["models"].values()} == {str(exports["version"])}
    assert all(os.path.isdir(p) for p in exports["models"].values())
    served = open(exports["models_config"]).read()
    assert served.count(f"specific {{ versions: {exports['version']} }}") == 4
    retrieval = on_disk["retrieval"]
    assert retrieval["epochs_run"] == 2 and retrieval["test"]["queries"] == 943
    assert retrieval["test"]["recall@100"] > test["recall@100"]
    # MovieLens rates a movie once: no re-watch target to skip.
    assert test["rewatch_targets_skipped"] == retrieval["test"]["rewatch_targets_skipped"] == 0
    paired = retrieval["retrieval_vs_popularity"]["recall@100"]
    assert paired["difference"] == pytest.approx(retrieval["test"]["recall@100"] -
                                                 test["recall@100"])
    assert 0 < paired["ci95"][0] < paired["difference"] < paired["ci95"][1]
    ranking = on_disk["ranking"]
    order = ranking["ranker_vs_generator_order"]  # generator minus ranker, same test pages
    assert order["difference"] == pytest.approx(
        ranking["baselines"]["candidate_generation_score"]["weighted_per_user_loss"]
        - ranking["test"]["weighted_per_user_loss"])
    assert order["ci95"][0] <= order["difference"] <= order["ci95"][1]
    assert order["pages"] == ranking["test"]["pages_with_pairs"]
    for split in ("train", "validation", "test"):
        assert (tmp_path / "movielens_100k" / "examples" / f"{split}.parquet").exists()
    # The events the run wrote are a valid source for a new run.
    events_cfg = _write(tmp_path, f"name: again\ndata:\n  format: events\n  path: "
                                  f"{tmp_path / 'movielens_100k' / 'events'}\n")
    again = run_pipeline(load_config(events_cfg).model_copy(update={
        "candidate_generation": config.candidate_generation.model_copy(update={"enabled": False}),
        "export": config.export.model_copy(update={"enabled": False})}),
        runs_dir=str(tmp_path), log=lambda *_: None)
    assert again["popularity"] == metrics["popularity"]


def test_recommend_command_uses_the_exports(main_run):
    saved_models = main_run[2] / "saved_models"
    out = subprocess.run([sys.executable, "-m", "tfrec.cli", "recommend", "--saved-models",
                          str(saved_models), "--user-id", "42", "-k", "7"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.splitlines()
    assert lines[0].startswith("user 42: 183 watches")
    top = [line for line in lines if re.match(r"^\s+\d+\.\s", line)]
    assert len(top) == 7
    # --rerank: the ranker's expected watch time re-orders the retrieved candidates.
    reranked = subprocess.run([sys.executable, "-m", "tfrec.cli", "recommend", "--saved-models",
                               str(saved_models), "--user-id", "42", "-k", "7", "--rerank"],
                              capture_output=True, text=True)
    assert reranked.returncode == 0, reranked.stderr[-2000:]
    ranked = [line for line in reranked.stdout.splitlines() if re.match(r"^\s+\d+\.\s", line)]
    scores = [float(line.split()[1]) for line in ranked]
    assert len(ranked) == 7 and scores == sorted(scores, reverse=True) and scores[0] > 0
    missing = subprocess.run([sys.executable, "-m", "tfrec.cli", "recommend", "--saved-models",
                              str(saved_models), "--user-id", "nobody"],
                             capture_output=True, text=True)
    assert missing.returncode == 2 and "user 'nobody' is not in" in missing.stderr


@pytest.mark.parametrize("section,message", [
    ("  tower:\n    hidden_units: []\n", "'candidate_generation.tower.hidden_units' must be"),
    ("  training:\n    epochs: 0\n", "'candidate_generation.training.epochs' must be > 0"),
    ("  softmax:\n    num_negatives: 0\n", "'candidate_generation.softmax.num_negatives' must"),
    ("  tower:\n    dropout: 1.5\n", "'candidate_generation.tower.dropout' must be in [0, 1)"),
    ("  softmax:\n    label_probability: guess\n", "label_probability' must be one of"),
    ("  tower:\n    embedding_dim: 32\n  softmax:\n    share_embeddings: true\n",
     "share_embeddings' needs"),
])
def test_values_that_would_crash_later_are_rejected_up_front(tmp_path, section, message):
    with pytest.raises(ConfigError) as err:
        load_config(_write(tmp_path, "name: x\ncandidate_generation:\n" + section))
    assert message in str(err.value)


def test_simulated_pipeline_reports_true_top_k_recall(tmp_path):
    """pipelines/simulated_youtube.yaml on the tiny world: the same stages as MovieLens, plus
    recall of the true top-K by affinity, where the trained model beats popularity."""
    config = load_config("pipelines/simulated_youtube.yaml")
    cg = config.candidate_generation
    config = config.model_copy(update={
        "data": config.data.model_copy(update={
            "simulator": config.data.simulator.model_copy(update={"preset": "tiny"})}),
        "candidate_generation": cg.model_copy(update={"training": cg.training.model_copy(
            update={"epochs": 6, "batch_size": 128, "learning_rate": 0.005})}),
        "export": config.export.model_copy(update={"enabled": False}),
        "ranking": config.ranking.model_copy(update={"model": config.ranking.model.model_copy(
            update={"epochs": 3, "batch_size": 1024})})})
    metrics = run_pipeline(config, runs_dir=str(tmp_path), log=lambda *_: None, report=False)
    assert metrics["data"]["impressions"] > 10_000 and metrics["data"]["searches"] > 500
    # The ranking stage trains on the logged impressions and is calibrated against the truth.
    ranking = metrics["ranking"]
    assert ranking["impressions"]["test"] > 1000
    assert 0 < ranking["test"]["weighted_per_user_loss"] < 0.5
    assert ranking["test"]["click_auc"] > 0.55
    # P3: the ranker trains on the validation window's impressions only (one week of four
    # here), so its calibration is looser than on P2's longer history, but it is calibrated:
    # exp(logit) estimates E[T] (every impression a negative, Platt-scaled on validation).
    assert "validation window" in ranking["source"]
    assert ranking["test"]["calibration"]["r2"] > 0.05, ranking["test"]["calibration"]
    assert 0.4 < ranking["test"]["calibration"]["slope"] < 1.6, ranking["test"]["calibration"]
    # The generator never saw these impressions, so its score is an honest feature, and the
    # two-stage order beats the generator's own.
    assert ranking["ranker_vs_generator_order"]["ci95"][0] > 0, ranking["ranker_vs_generator_order"]
    assert ranking["logit_calibration"]["scale"] > 0
    assert ranking["baselines"]["oracle_true_expected_watch_time"]["weighted_per_user_loss"] < \
        ranking["test"]["weighted_per_user_loss"]
    pop, model = metrics["popularity"]["test"], metrics["retrieval"]["test"]
    for result in (pop, model):
        assert 0 <= result["true_recall@10"] <= result["true_recall@100"] <= 1
        # Upload times are logged: the fresh slice and the age profile are reported.
        assert 0 < result["fresh"]["queries"] < result["queries"]
        assert sum(result["age_profile"]["recommended_share"]) == pytest.approx(1, abs=1e-3)
    assert model["true_recall@10"] > pop["true_recall@10"] + 0.05, (model, pop)
    assert metrics["examples"]["protocol"] == "p3" and "cross_fitting" not in metrics
    # Simulated users re-watch: those test targets are skipped, the same ones for every figure.
    assert pop["rewatch_targets_skipped"] == model["rewatch_targets_skipped"] > 0
    assert pop["queries"] == model["queries"] == \
        metrics["examples"]["test"] - model["rewatch_targets_skipped"]


def test_set_overrides_a_key_and_is_checked_like_the_file(tmp_path):
    config = load_config(MAIN, ["ranking.cross_fit_folds=0", "name=variant",
                                "evaluation.ks=[5, 10]"])
    assert config.ranking.cross_fit_folds == 0 and config.name == "variant"
    assert config.evaluation.ks == (5, 10)
    with pytest.raises(ConfigError, match="unknown key 'ranking.cross_fit_fold'; did you mean"):
        load_config(MAIN, ["ranking.cross_fit_fold=0"])
    with pytest.raises(ConfigError, match="must look like section.key=value"):
        load_config(MAIN, ["ranking.cross_fit_folds"])
    with pytest.raises(ConfigError, match="'evaluation.protocol' must be one of"):
        load_config(MAIN, ["evaluation.protocol=p9"])
