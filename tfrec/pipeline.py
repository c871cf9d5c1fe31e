"""The main job: fetch -> events -> examples -> popularity -> P1 evaluation.

Each stage writes under runs/<name>/ and adds its figures to runs/<name>/metrics.json, so the file
always shows everything that works, end to end. Later capabilities add stages here.
"""
import hashlib
import json
import os
import time

import yaml

import tfrec
from tfrec.config import to_dict
from tfrec.data import fetch, movielens, schema
from tfrec.evaluation.candidates import evaluate_candidates
from tfrec.features.local_driver import build_candidate_examples
from tfrec.models.popularity import Popularity


def write_json_atomic(path, data):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=2, sort_keys=False)
        f.write("\n")
    os.replace(tmp, path)


def simulated_world(data_config):
    """The simulator World behind the events (its ground truth), or None for logged data."""
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


class Run:
    """One pipeline run: its folder, metrics and stage log."""

    def __init__(self, config, runs_dir="runs", log=print):
        self.config = config
        self.dir = os.path.join(os.path.abspath(runs_dir), config.name)
        os.makedirs(self.dir, exist_ok=True)
        self.log = log
        self.metrics = {}
        self.timings = {}

    def path(self, *parts):
        """A path inside the run folder (refuses to leave it)."""
        full = os.path.abspath(os.path.join(self.dir, *parts))
        if os.path.commonpath([full, self.dir]) != self.dir:
            raise ValueError(f"{os.path.join(*parts)!r} is outside the run folder {self.dir}")
        return full

    def stage(self, name, fn):
        start = time.perf_counter()
        self.log(f"[{name}] ...")
        result = fn()
        seconds = time.perf_counter() - start
        self.timings[name] = round(seconds, 3)
        self.log(f"[{name}] done in {seconds:.1f}s")
        self.save_metrics()
        return result

    def save_metrics(self):
        write_json_atomic(self.path("metrics.json"), {**self.metrics, "timings_s": self.timings})


def run_pipeline(config, runs_dir="runs", log=print):
    """Run every stage of `config`; returns the metrics dict (also in runs/<name>/metrics.json)."""
    run = Run(config, runs_dir, log)
    with open(run.path("config.yaml"), "w") as f:
        yaml.safe_dump(to_dict(config), f, sort_keys=False)

    def events_stage():
        events = load_events(config.data, log=log)
        schema.write_events(events, run.path("events"))
        run.metrics["data"] = {"source": config.data.source, "format": config.data.format,
                               **events.counts(),
                               "dropped_duplicates": events.dropped_duplicates}
        log(f"  {events.counts()}")
        return events

    events = run.stage("events", events_stage)

    def examples_stage():
        start = time.perf_counter()
        examples = build_candidate_examples(events, config.examples)
        seconds = time.perf_counter() - start
        for split in ("train", "validation", "test"):
            getattr(examples, split).to_parquet(run.path("examples", f"{split}.parquet"))
        run.metrics["examples"] = {**examples.counts(), "end_of_training": examples.end_of_training,
                                   "build_seconds": round(seconds, 3)}
        log(f"  {examples.counts()}")
        return examples

    examples = run.stage("examples", examples_stage)
    corpus = events.videos["video_id"].to_numpy()
    world = simulated_world(config.data)


    def evaluate(score):
        return evaluate_candidates(score, examples, corpus, config.evaluation.ks, world)

    def popularity_stage():
        model = Popularity(corpus, examples.train_watches["video_id"].to_numpy())
        result = evaluate(lambda queries, s, e: model.scores(e - s))
        run.metrics["popularity"] = result
        log("  test " + ", ".join(f"{k}={v:.4f}" for k, v in result["test"].items()
                                  if k != "queries"))
        return model

    run.stage("popularity", popularity_stage)

    cg = config.candidate_generation
    if cg.enabled:
        def candidate_generation_stage():
            from tfrec.models.training import train_candidate_generation
            model, result = train_candidate_generation(
                examples, events.users, corpus, cg.tower, cg.softmax, cg.training,
                ks=config.evaluation.ks, log=log)
            if world is not None:
                from tfrec.evaluation.true_affinity import recall_of_true_top_k
                from tfrec.models.training import query_scorer
                score = query_scorer(model, cg.tower)
                for split in ("validation", "test"):
                    queries = getattr(examples, split)
                    result[split].update(recall_of_true_top_k(
                        lambda s, e: score(queries, s, e), queries, corpus, world,
                        ks=config.evaluation.ks))
            run.metrics["retrieval"] = result
            log("  test " + ", ".join(f"{k}={v:.4f}" for k, v in result["test"].items()
                                      if k != "queries"))
            return model

        model = run.stage("candidate_generation", candidate_generation_stage)

        if config.export.enabled:
            def export_stage():
                from tfrec.features.dataset import padded_features
                from tfrec.serving.candidate_exports import export_candidate_generation
                features = padded_features(examples.validation, cg.tower.max_history,
                                           cg.tower.max_search_tokens)
                manifest = {
                    "tfrec_version": tfrec.__version__, "run": config.name, "run_dir": run.dir,
                    "events_dir": run.path("events"), "config": to_dict(config),
                    "end_of_training": examples.end_of_training,
                    "videos": int(len(corpus)),
                    "video_vocabulary_sha256": hashlib.sha256(
                        "\n".join(map(str, corpus)).encode()).hexdigest(),
                    "retrieval_test": run.metrics["retrieval"]["test"],
                }
                out = export_candidate_generation(
                    model, config.export.saved_models_dir, features, manifest,
                    k=config.export.k, target_recall=config.export.target_recall, log=log)
                run.metrics["ann"] = out["ann"]
                run.metrics["exports"] = out["paths"]
                log(f"  ScaNN recall@10 vs exact {out['ann']['recall@10_vs_exact']:.4f}, "
                    f"brute force {out['ann']['brute_force_qps']:.0f} q/s, "
                    f"ScaNN {out['ann']['scann_qps']:.0f} q/s")

            run.stage("export", export_stage)
    log(f"metrics: {run.path('metrics.json')}")
    return run.metrics
