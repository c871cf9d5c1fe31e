"""The main job: events -> examples -> popularity -> candidate_generation -> export; the report.

Each stage is a `tfrec.stages.Stage`: a `run` function that computes and writes its outputs into
runs/<name>/<stage>/ and returns its metrics, and a `load` function that reads them back. A rerun
loads the stages whose inputs did not change instead of running them. To add a stage, write its
two functions and append a `Stage(...)` to `pipeline_stages` after the stages it depends on.
"""
import functools
import hashlib
import json
import os
import shutil
import time

import pandas as pd
import yaml

import tfrec
from tfrec.config import check_against_data, to_dict
from tfrec.data import fetch, movielens, schema
from tfrec.evaluation.candidates import evaluate_candidates
from tfrec.evaluation.next_watch import COUNTS
from tfrec.features.example_set import ExampleSet
from tfrec.features.local_driver import CandidateExamples, build_candidate_examples
from tfrec.models.popularity import Popularity
from tfrec.progress import progress_bar, progress_callback
from tfrec.run_lock import run_folder_lock
from tfrec.stages import Stage, fingerprint_files, run_stages, write_json_atomic

SPLITS = ("train", "validation", "test")
WINDOWS = ("validation_window", "test_window")  # P3 pages of sources without impressions
# The evaluation keys that decide the held-out split (so the examples stage's cache key).
EXAMPLE_SPLIT = ("evaluation.protocol", "evaluation.p3_window_days", "evaluation.p3_window_share")
# Recall@K is also measured at these K, for the report's Recall@K curves.
CURVE_KS = (1, 5, 10, 20, 50, 100, 200, 500)


def evaluation_ks(config):
    """The configured K plus the curve's, ascending."""
    return tuple(sorted(set(config.evaluation.ks) | set(CURVE_KS)))


@functools.lru_cache(maxsize=2)
def simulated_world(data_config):
    """The simulator World behind the events (its ground truth), or None for logged data.
    Built once per data config (stages share it)."""
    if data_config.format != "simulator":
        return None
    from tfrec.data.simulator import build_world, preset
    return build_world(preset(data_config.simulator.preset), data_config.simulator.seed)


def load_events(data_config, log=print):
    """EventTables for a DataConfig (fetching MovieLens-100K into the cache when no path is set)."""
    fmt, path = data_config.format, data_config.path
    if fmt == "recbole":
        if path is None:
            if data_config.source not in fetch.DATASETS:
                raise ValueError(f"data.source {data_config.source!r} cannot be fetched; set "
                                 f"data.path (fetchable: {fetch.DATASETS})")
            path = fetch.fetch_movielens_100k(data_config.cache_dir, log=log)
        return movielens.read_recbole(path)
    if fmt == "grouplens":
        return movielens.read_grouplens(path)
    if fmt == "events":
        return schema.read_events(path)
    if fmt == "tfds":
        from tfrec.data import tfds_source
        return tfds_source.read_tfds_movielens(data_config.tfds_data_dir)
    if fmt == "simulator":
        from tfrec.data.simulator import preset, simulate
        return simulate(preset(data_config.simulator.preset), data_config.simulator.seed)[1]
    raise ValueError(f"unknown data.format {fmt!r}")


def _test_line(figures):
    return "  test " + ", ".join(f"{k}={v:.4f}" for k, v in figures.items()
                                 if k not in COUNTS and isinstance(v, float))


# -- events ---------------------------------------------------------------------------------------

def run_events(ctx):
    events = load_events(ctx.config.data, log=ctx.log)
    schema.write_events(events, ctx.out)
    ctx.log(f"  {events.counts()}")
    return {"data": {"source": ctx.config.data.source, "format": ctx.config.data.format,
                     **events.counts(), "dropped_duplicates": events.dropped_duplicates}}


def events_input_files(config):
    """Fingerprint of the files the events stage reads: the data folder (or the TFDS data_dir).
    Fetched MovieLens is pinned by its sha256 checksums and the simulator by its config, so they
    need none (and a first fetch does not change the key)."""
    data = config.data
    folder = data.tfds_data_dir if data.format == "tfds" else data.path
    return fingerprint_files(os.path.abspath(folder)) if folder else None


def load_events_stage(ctx):
    return schema.read_events(ctx.out)


# -- examples -------------------------------------------------------------------------------------

def run_examples(ctx):
    events = ctx.inputs["events"]
    start = time.perf_counter()
    with progress_bar(desc="users", enabled=ctx.progress, leave=False, unit="user") as bar:
        examples = build_candidate_examples(events, ctx.config.examples,
                                            progress=progress_callback(bar),
                                            protocol=ctx.config.evaluation)
    seconds = time.perf_counter() - start
    for split in SPLITS:
        getattr(examples, split).to_parquet(ctx.path(f"{split}.parquet"))
    examples.train_watches.to_parquet(ctx.path("train_watches.parquet"), index=False)
    for name, queries in (examples.window_queries or {}).items():
        queries.to_parquet(ctx.path(f"{name}.parquet"))
    ctx.log(f"  {examples.counts()}" + (f", P3 windows {examples.windows.to_dict()}"
                                        if examples.windows else ""))
    windows = examples.windows.to_dict() if examples.windows else None
    return {"examples": {**examples.counts(), "protocol": ctx.config.evaluation.protocol,
                         "end_of_training": examples.end_of_training, "p3_windows": windows,
                         "build_seconds": round(seconds, 3)}}


def load_examples(ctx):
    from tfrec.features.split import TimeWindows
    with open(ctx.path("stage.json")) as f:
        facts = json.load(f)["metrics"]["examples"]
    return CandidateExamples(
        **{split: ExampleSet.from_parquet(ctx.path(f"{split}.parquet")) for split in SPLITS},
        train_watches=pd.read_parquet(ctx.path("train_watches.parquet")),
        end_of_training=facts["end_of_training"],
        windows=TimeWindows(**facts["p3_windows"]) if facts.get("p3_windows") else None,
        window_queries={name: ExampleSet.from_parquet(ctx.path(f"{name}.parquet"))
                        for name in WINDOWS} if facts.get("p3_windows") else None)


def _corpus(ctx):
    return ctx.inputs["events"].videos["video_id"].to_numpy()


# -- popularity -----------------------------------------------------------------------------------

# Per-query test figures in the popularity and candidate_generation folders, for the paired
# comparison of the two (`tfrec.evaluation.candidates.compare_per_query`).
TEST_PER_QUERY = "test_per_query.parquet"


def _write_per_query(ctx, table):
    tmp = ctx.path(TEST_PER_QUERY + ".tmp")
    table.to_parquet(tmp, index=False)
    os.replace(tmp, ctx.path(TEST_PER_QUERY))


def run_popularity(ctx):
    examples, corpus = ctx.inputs["examples"], _corpus(ctx)
    result, per_query = popularity_figures(examples, ctx.inputs["events"], ctx.config)
    _write_per_query(ctx, per_query["test"])
    ctx.log(_test_line(result["test"]))
    return {"popularity": result}


def popularity_figures(examples, events, config):
    """({split: figures}, {split: per-query figures}) of popularity over the training watches."""
    corpus = events.videos["video_id"].to_numpy()
    model = Popularity(corpus, examples.train_watches["video_id"].to_numpy())
    return evaluate_candidates(lambda queries, s, e: model.scores(e - s), examples, corpus,
                               evaluation_ks(config), simulated_world(config.data),
                               per_query=True, videos=events.videos)


def generator_figures(model, examples, events, config, popularity_test):
    """({split: figures}, test per-query figures) of a trained generator, with the paired
    comparison to popularity on the same test queries in figures["retrieval_vs_popularity"]."""
    from tfrec.evaluation.candidates import compare_per_query
    from tfrec.models.training import query_scorer
    result, per_query = evaluate_candidates(
        query_scorer(model, config.candidate_generation.tower), examples,
        events.videos["video_id"].to_numpy(), evaluation_ks(config),
        simulated_world(config.data), per_query=True, videos=events.videos)
    result["retrieval_vs_popularity"] = compare_per_query(per_query["test"], popularity_test)
    return result, per_query["test"]


def load_popularity(ctx):
    """Popularity's per-query test figures (DataFrame)."""
    return pd.read_parquet(ctx.path(TEST_PER_QUERY))


# -- candidate generation -------------------------------------------------------------------------

WEIGHTS = "weights/model"  # TensorFlow checkpoint prefix inside the stage folder
SERVABLES = "servables"  # saved (unversioned) servables inside the export and ranking folders


def run_candidate_generation(ctx):
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
        progress=ctx.progress)
    figures, per_query = generator_figures(model, examples, events, ctx.config,
                                           ctx.inputs["popularity"])
    result.update(figures)  # validation and test at the chosen epoch, with truth and freshness
    _write_per_query(ctx, per_query)
    save_model(model, ctx.path(WEIGHTS), model_artifacts(examples, events.users, _corpus(ctx)))
    write_projector(ctx.run_path("tensorboard", "projector"), model, events.videos)
    ctx.log(_test_line(result["test"]))
    ctx.log("  test recall@10 vs popularity {difference:+.4f} (95% CI {ci95[0]:+.4f}, "
            "{ci95[1]:+.4f})".format(**result["retrieval_vs_popularity"]["recall@10"]))
    return {"retrieval": result}


def load_candidate_generation(ctx):
    """The trained model, from its weights and artifacts alone (no training data is read)."""
    from tfrec.models.training import load_model
    cg = ctx.config.candidate_generation
    if not os.path.exists(ctx.path(WEIGHTS + ".index")):
        raise FileNotFoundError(ctx.path(WEIGHTS + ".index"))
    return load_model(ctx.path(WEIGHTS), cg.tower, cg.softmax, seed=cg.training.seed)


# -- the other protocol ---------------------------------------------------------------------------

def run_compare_protocol(ctx):
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
        ks=evaluation_ks(config), log=ctx.log)
    figures, _ = generator_figures(model, examples, events, config, pop_rows["test"])
    result.update(figures)
    ctx.log(_test_line(result["test"]))
    return {"compare_protocol": {
        "protocol": other, "examples": {**examples.counts(), "p3_windows": (
            examples.windows.to_dict() if examples.windows else None)},
        "popularity": popularity, "retrieval": result}}


# -- export ---------------------------------------------------------------------------------------

def run_export(ctx):
    """Save the retrieval servables into the stage folder; the publish stage versions them."""
    from tfrec.features.dataset import padded_features
    from tfrec.serving.candidate_exports import save_candidate_generation
    config, examples, corpus = ctx.config, ctx.inputs["examples"], _corpus(ctx)
    tower = config.candidate_generation.tower
    features = padded_features(examples.validation, tower.max_history, tower.max_search_tokens)
    manifest = {
        "tfrec_version": tfrec.__version__, "run": config.name, "run_dir": ctx.run_dir,
        "events_dir": ctx.run_path("events"), "config": to_dict(config),
        "end_of_training": examples.end_of_training,
        "videos": int(len(corpus)),
        "video_vocabulary_sha256": hashlib.sha256("\n".join(map(str, corpus)).encode()).hexdigest(),
        "retrieval_test": ctx.metrics["retrieval"]["test"],
    }
    out = save_candidate_generation(
        ctx.inputs["candidate_generation"], ctx.path(SERVABLES), features, manifest,
        k=config.export.k, target_recall=config.export.target_recall, log=ctx.log)
    ann = out["ann"]
    ctx.log(f"  ScaNN recall@10 vs exact {ann['recall@10_vs_exact']:.4f}, brute force "
            f"{ann['brute_force_qps']:.0f} q/s, ScaNN {ann['scann_qps']:.0f} q/s")
    return {"ann": ann}


def load_export(ctx):
    """{servable name: its saved folder} (not yet versioned; the publish stage versions them)."""
    from tfrec.serving.candidate_exports import NAMES
    paths = {name: ctx.path(SERVABLES, name) for name in NAMES}
    missing = [p for p in paths.values() if not os.path.isdir(p)]
    if missing:
        raise FileNotFoundError(f"saved servable {missing[0]} is gone")
    return paths


# -- publish --------------------------------------------------------------------------------------

def run_publish(ctx):
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


def load_publish(ctx):
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


# -- cross-fitted generators (P1 ranking) --------------------------------------------------------

def run_cross_fitting(ctx):
    """One generator per fold of users (`tfrec.models.cross_fitting`), for the ranker's training
    pages under P1; trained for the run's chosen number of epochs."""
    from tfrec.models.cross_fitting import fold_examples, train_fold_generators
    from tfrec.models.training import model_artifacts, save_model
    cg, examples, events = ctx.config.candidate_generation, ctx.inputs["examples"], \
        ctx.inputs["events"]
    epochs = ctx.metrics["retrieval"]["best_epoch"]
    folds = train_fold_generators(examples, events.users, _corpus(ctx), cg.tower, cg.softmax,
                                  cg.training, epochs, ks=ctx.config.evaluation.ks, log=ctx.log,
                                  folds=ctx.config.ranking.cross_fit_folds)
    for k, (model, _) in enumerate(folds):
        save_model(model, ctx.path(f"fold{k}", "model"), model_artifacts(
            fold_examples(examples, k, len(folds)), events.users, _corpus(ctx)))
    return {"cross_fitting": {"folds": len(folds), "epochs": epochs, "validation": [
        {m: r["validation"][m] for m in ("recall@10", "map@100", "queries")}
        for _, r in folds]}}


def load_cross_fitting(ctx):
    """[model per fold]."""
    from tfrec.models.training import load_model
    cg = ctx.config.candidate_generation
    return [load_model(ctx.path(f"fold{k}", "model"), cg.tower, cg.softmax,
                       seed=cg.training.seed) for k in range(ctx.config.ranking.cross_fit_folds)]


# -- ranking --------------------------------------------------------------------------------------

def ranking_splits(ctx):
    """(train, validation, test) ranking ExampleSets and a line saying where they came from.

    Under P3 the ranker sees only what the generator never trained on: pages inside the
    validation window (split by time again: the latest `ranking.p3_holdout_share` choose its
    epoch and Platt scaling), tested on the pages of the test window. Under P1, logged
    impressions (the simulator's) are split by time; a source without impressions (MovieLens)
    gets pages built from the candidate generator's retrievals for each next-watch example
    (`retrieved_impressions`; at most `max_train_pages` training pages, sampled).
    """
    import numpy as np

    from tfrec.features.ranking_examples import (build_ranking_examples, holdout_latest,
                                                  split_by_time)
    rk, events = ctx.config.ranking, ctx.inputs["events"]
    model, cg_examples = ctx.inputs["candidate_generation"], ctx.inputs["examples"]
    windows = cg_examples.windows
    # P1: fold generators build and score the training pages (the stage is off under P3).
    folds = ctx.inputs["cross_fitting"] if "cross_fitting" in ctx.inputs else None
    if len(events.impressions):
        examples = build_ranking_examples(events, max_history=rk.model.max_history)
        if windows is None:
            parts = split_by_time(examples, rk.validation_fraction, rk.test_fraction)
            source = "logged impressions, split by time"
        else:
            times = np.asarray(examples["timestamp"])
            window = examples.take((times >= windows.validation_start)
                                   & (times < windows.test_start))
            parts = (*holdout_latest(window, rk.p3_holdout_share),
                     examples.take(times >= windows.test_start))
            source = "logged impressions of the P3 validation window (test: the test window)"
    else:
        ri = rk.retrieved_impressions
        if windows is None:
            queries = (cg_examples.train, cg_examples.validation, cg_examples.test)
        else:
            queries = (cg_examples.window_queries["validation_window"], None,
                       cg_examples.window_queries["test_window"])
        train = queries[0]
        if len(train) > ri.max_train_pages:
            rows = np.sort(np.random.default_rng(ri.seed).choice(len(train), ri.max_train_pages,
                                                                 replace=False))
            train = train.take(rows)
        parts = [None if q is None else _retrieved_pages(ctx, q, folds if i == 0 else None)
                 for i, q in enumerate((train, *queries[1:]))]
        if windows is not None:
            parts[:2] = holdout_latest(parts[0], rk.p3_holdout_share)
        source = (f"pages built from the candidate generator's top {ri.top_n} "
                  f"(positive: {ri.positive})" + (
                      "" if windows is None else " at every watch of the P3 validation window "
                      "(test: the test window)"))
    if folds:
        how = " and ".join(w for w, used in (("built", not len(events.impressions)),
                                             ("scored", "cg_score" in rk.model.features)) if used)
        source += (f"; training pages {how} by {len(folds)} cross-fitted generators, each "
                   "trained on the other users")
    if "cg_score" in rk.model.features:
        tower = ctx.config.candidate_generation.tower
        for i, part in enumerate(parts):
            part.columns["cg_score"] = _generator_scores(folds if i == 0 and folds else [model],
                                                         part, tower)
    return tuple(parts), source


def _generator_scores(models, part, tower):
    """[n] cg_score of each impression: with one model, its u·v; with fold models, the u·v of
    the generator that never saw the impression's user (`cross_fitting.scoring_fold`)."""
    import numpy as np

    from tfrec.features.retrieved_impressions import candidate_generation_scores
    from tfrec.models.cross_fitting import scoring_fold
    if len(models) == 1:
        return candidate_generation_scores(models[0], part, tower)
    fold = scoring_fold(part["user_id"], len(models))
    out = np.zeros(len(part), np.float32)
    for k, model in enumerate(models):
        rows = np.flatnonzero(fold == k)
        out[rows] = candidate_generation_scores(model, part.take(rows), tower)
    return out


def _retrieved_pages(ctx, queries, folds=None):
    """Ranking examples of pages built from the generator's retrievals for `queries`; with fold
    generators, each user's pages from the one that never saw the user."""
    import numpy as np
    import pandas as pd

    from tfrec.features.ranking_examples import build_ranking_examples
    from tfrec.features.retrieved_impressions import retrieved_impressions
    from tfrec.models.cross_fitting import scoring_fold
    rk, events = ctx.config.ranking, ctx.inputs["events"]
    ri = rk.retrieved_impressions
    models = folds or [ctx.inputs["candidate_generation"]]
    fold = scoring_fold(queries["user_id"], len(models)) if folds else np.zeros(len(queries), int)
    impressions = pd.concat([retrieved_impressions(
        model, queries.take(np.flatnonzero(fold == k)), ctx.config.candidate_generation.tower,
        events.watches, ri.top_n, ri.negatives_per_page, seed=ri.seed + k,
        positive=ri.positive) for k, model in enumerate(models)], ignore_index=True)
    return build_ranking_examples(events, impressions, max_history=rk.model.max_history)


RANKER_WEIGHTS = "weights/ranker"  # TensorFlow checkpoint prefix inside the ranking folder


def run_ranking(ctx):
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


def load_ranking(ctx):
    """The saved ranker servable's folder, or None when the export is off."""
    path = ctx.path(SERVABLES, "ranker")
    return path if os.path.isdir(path) else None


def load_ranker(ctx):
    """The trained RankingModel, from its weights and artifacts alone (no ranking example is
    read)."""
    from tfrec.models.ranking_training import load_ranker as load
    if not os.path.exists(ctx.path(RANKER_WEIGHTS + ".index")):
        raise FileNotFoundError(ctx.path(RANKER_WEIGHTS + ".index"))
    return load(ctx.path(RANKER_WEIGHTS), ctx.config.ranking.model)


def pipeline_stages():
    """The stages in dependency order."""
    cg_on = lambda c: c.candidate_generation.enabled  # noqa: E731
    return [
        Stage("events", run_events, load_events_stage, config_sections=("data",),
              input_files=events_input_files),
        Stage("examples", run_examples, load_examples, depends_on=("events",),
              config_sections=("examples", *EXAMPLE_SPLIT), version=3),
        Stage("popularity", run_popularity, load_popularity, depends_on=("events", "examples"),
              config_sections=("evaluation",), version=3),
        # Depends on popularity for the paired comparison in its metrics.
        Stage("candidate_generation", run_candidate_generation, load_candidate_generation,
              depends_on=("events", "examples", "popularity"),
              config_sections=("evaluation", "candidate_generation"), version=5, enabled=cg_on),
        Stage("compare_protocol", run_compare_protocol, lambda ctx: None,
              depends_on=("events",),
              config_sections=("examples", "evaluation", "candidate_generation"),
              enabled=lambda c: cg_on(c) and c.evaluation.compare_protocol is not None),
        Stage("export", run_export, load_export,
              depends_on=("events", "examples", "candidate_generation"),
              config_sections=("export",), check=load_export, version=2,
              enabled=lambda c: cg_on(c) and c.export.enabled),
        # Under P1 with cg_score only: P3's ranker trains on a window no generator saw, and a
        # ranker without cg_score does not read the generator's score.
        Stage("cross_fitting", run_cross_fitting, load_cross_fitting,
              depends_on=("events", "examples", "candidate_generation"),
              config_sections=("ranking.cross_fit_folds",), enabled=lambda c: (
                  cg_on(c) and c.ranking.enabled and c.ranking.cross_fit_folds > 1
                  and c.evaluation.protocol == "p1" and "cg_score" in c.ranking.model.features)),
        Stage("ranking", run_ranking, load_ranking,
              depends_on=("events", "examples", "candidate_generation"),
              optional_depends_on=("cross_fitting",),
              config_sections=("ranking", "export.enabled"), version=5,
              enabled=lambda c: cg_on(c) and c.ranking.enabled),
        Stage("publish", run_publish, load_publish, depends_on=("export",),
              optional_depends_on=("ranking",), config_sections=("export",), check=load_publish,
              enabled=lambda c: cg_on(c) and c.export.enabled),
    ]


def _also_to_file(log, path):
    """`log`, also appending each line (time-stamped) to the run's log file."""
    def both(message):
        with open(path, "a") as f:
            f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}\n")
        log(message)
    return both


def run_pipeline(config, runs_dir="runs", log=print, force=(), progress=False, report=True):
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


def _write_config(run_dir, config):
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


def _run_locked(config, run_dir, log, force, progress, report):
    _write_config(run_dir, config)
    log = _also_to_file(log, os.path.join(run_dir, "run.log"))
    start = time.perf_counter()

    def save_metrics(metrics, stages):
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
