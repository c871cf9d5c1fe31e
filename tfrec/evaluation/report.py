"""runs/<name>/report.md: what was run and what came out, with PNG plots in runs/<name>/plots/.

The report is a list of sections, each a function (metrics, config, plots_dir) -> Markdown text
(or None when the run has nothing for it). A new stage adds its section to `SECTIONS`; until it
does, `metrics["ranking"]` (or any mapping passed to `scalar_table`) is shown as a table of its
scalar figures.
"""
import datetime
import os
import typing
import uuid

import yaml

import tfrec
from tfrec.config import PipelineConfig, to_dict
from tfrec.evaluation import plots
from tfrec.evaluation.bootstrap import RESAMPLES

P1_COLUMNS = ("recall@10", "recall@50", "recall@100", "ndcg@10", "map@100")
REPORTED_SPLITS = ("test", "validation")  # the order of the rows of the retrieval tables

Metrics = dict[str, typing.Any]  # metrics.json (or one of its sections) as a dict
# A report section: (metrics, config, plots folder) -> its Markdown, or None when it has nothing.
Section = typing.Callable[[Metrics, PipelineConfig, str], str | None]


def _fmt(value: typing.Any) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4f}"
    return str(value)


def _table(header: typing.Sequence[str], rows: typing.Iterable[typing.Sequence]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_fmt(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _interval(comparison: Metrics) -> str:
    """'+0.0123 [+0.0045, +0.0201]' of a {difference, ci95} comparison."""
    lo, hi = comparison["ci95"]
    return f"{comparison['difference']:+.4f} [{lo:+.4f}, {hi:+.4f}]"


def _image(plots_dir: str, path: str | None, alt: str) -> str:
    return f"![{alt}](plots/{os.path.basename(path)})" if path else ""


def flatten_scalars(mapping: Metrics, prefix: str = "") -> list[tuple[str, typing.Any]]:
    """[(dotted name, value)] of every number/string/bool in a nested dict (lists skipped)."""
    out: list[tuple[str, typing.Any]] = []
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out += flatten_scalars(value, name + ".")
        elif isinstance(value, (int, float, str, bool)):
            out.append((name, value))
    return out


def scalar_table(mapping: Metrics) -> str:
    """A two-column Markdown table of a nested dict's scalar figures."""
    return _table(("figure", "value"), flatten_scalars(mapping))


def summary(metrics: Metrics, config: PipelineConfig) -> str:
    """The first lines: what was run, and the headline figure."""
    cg = config.candidate_generation
    data = metrics.get("data", {})
    text = (f"tfrec {tfrec.__version__}; data `{config.data.source}` ({data.get('watches', '?')} "
            f"watches, {data.get('users', '?')} users, {data.get('videos', '?')} videos)")
    if cg.enabled:
        text += (f"; candidate generation: tower {list(cg.tower.hidden_units)} on "
                 f"{', '.join(cg.tower.features)}, `{cg.softmax.loss}` softmax")
    text += f". Report written {datetime.datetime.now().strftime('%Y-%m-%d %H:%M')}."
    if "retrieval" in metrics and "popularity" in metrics:
        ret, pop = metrics["retrieval"]["test"], metrics["popularity"]["test"]
        paired = metrics["retrieval"].get("retrieval_vs_popularity", {})
        ci = {m: f" (difference {_interval(paired[m])})" if m in paired else ""
              for m in ("recall@10", "map@100")}
        text += (f"\n\n**Test Recall@10 {ret['recall@10']:.4f} vs popularity "
                 f"{pop['recall@10']:.4f}{ci['recall@10']}; MAP@100 {ret['map@100']:.4f} vs "
                 f"{pop['map@100']:.4f}{ci['map@100']}.**")
    return text


def section_run(metrics: Metrics, config: PipelineConfig, plots_dir: str) -> str | None:
    stages = metrics.get("stages", {})
    rows = [(name, s["key"][:8], f"{s['compute_seconds']:.1f}") for name, s in stages.items()]
    total = sum(s["compute_seconds"] for s in stages.values())
    return "\n\n".join([
        "Seconds each stage took to make its outputs (a later run that finds them cached "
        f"reuses them): {total:.1f}s in all.",
        _table(("stage", "cache key", "seconds"), rows),
        _image(plots_dir, plots.timings(metrics, os.path.join(plots_dir, "timings.png")),
               "time per stage"),
        "<details><summary>resolved config</summary>\n\n```yaml\n"
        + yaml.safe_dump(to_dict(config), sort_keys=False) + "```\n</details>"])


def section_data(metrics: Metrics, config: PipelineConfig, plots_dir: str) -> str | None:
    data, examples = metrics.get("data"), metrics.get("examples")
    if not data:
        return None
    rows = [(k, v) for k, v in data.items() if isinstance(v, (int, float)) and
            not isinstance(v, bool)]
    text = f"Source `{data.get('source')}` ({data.get('format')}).\n\n" + \
        _table(("events table", "rows"), rows)
    dropped = {k: v for k, v in (data.get("dropped_duplicates") or {}).items() if v}
    text += "\n\nExact duplicate rows dropped: " + (
        ", ".join(f"{k} {v:,}" for k, v in dropped.items()) if dropped else "none") + "."
    if examples:
        text += "\n\n" + _table(("examples", "count"), [
            (k, v) for k, v in examples.items() if k in ("train", "validation", "test")])
    return text


def section_p1(metrics: Metrics, config: PipelineConfig, plots_dir: str) -> str | None:
    text = retrieval_tables(metrics, config, config.evaluation.protocol,
                            metrics.get("examples", {}).get("p3_windows"))
    if text is None:
        return None
    path = plots.recall_at_k(metrics, os.path.join(plots_dir, "recall_at_k.png"))
    return text + "\n\n" + _image(plots_dir, path, "Recall@K")


def section_compare_protocol(metrics: Metrics, config: PipelineConfig,
                             plots_dir: str) -> str | None:
    """The same generator config and popularity under the run's other protocol."""
    other = metrics.get("compare_protocol")
    if not other:
        return None
    tables = retrieval_tables(other, config, other["protocol"],
                              other["examples"].get("p3_windows"))
    if tables is None:
        return None
    return ("The run's candidate-generation config trained again, and popularity, under the "
            "other protocol (`evaluation.compare_protocol`; this generator is not exported). "
            + tables)


def _sources(block: Metrics) -> list[str]:
    """The candidate sources with figures in `block`: "retrieval" (the generator), then
    "popularity"."""
    return [m for m in ("retrieval", "popularity") if m in block]


def _source_rows(block: Metrics, models: list[str], split: str,
                 cells: typing.Callable[[Metrics], list]) -> list[tuple]:
    """[(split, model, *cells(that model's figures on `split`))] of each model in `block`."""
    return [(split, model, *cells(block[model][split])) for model in models]


def retrieval_tables(block: Metrics, config: PipelineConfig, protocol: str,
                     windows: Metrics | None) -> str | None:
    """Markdown: the protocol, query counts, generator vs popularity per split and the paired
    test differences; `block` holds "retrieval" and "popularity" figures (or None)."""
    models = _sources(block)
    if not models:
        return None
    rows: list[tuple] = []
    for split in REPORTED_SPLITS:
        rows += _source_rows(block, models, split, lambda figures: [
            figures.get(c, float("nan")) for c in P1_COLUMNS])
        if len(models) == 2:
            ret, pop = (block[m][split] for m in models)
            rows.append((split, "retrieval / popularity",
                         *[f"{ret[c] / pop[c]:.2f}x" if pop.get(c) else "" for c in P1_COLUMNS]))
    counts = "; ".join(
        f"{split} {block[models[0]][split].get('queries')} scored, "
        f"{block[models[0]][split].get('rewatch_targets_skipped', 0)} re-watch targets skipped"
        for split in REPORTED_SPLITS)
    text = (protocol_text(protocol, windows, config) + " All videos are ranked, those watched "
            "before excluded, and a query whose target is itself a re-watch is not scored "
            f"(queries: {counts}). Retrieval figures are at the epoch chosen on "
            "validation.\n\n" + _table(("split", "model", *P1_COLUMNS), rows))
    paired = block.get("retrieval", {}).get("retrieval_vs_popularity")
    if paired:
        text += ("\n\nRetrieval minus popularity on the same test queries, with the 95% "
                 f"interval of a paired bootstrap over queries ({RESAMPLES:,} resamples); an "
                 "interval that contains 0 is no evidence of a difference.\n\n"
                 + _table(("test", *paired), [("difference [95% interval]",
                                               *[_interval(c) for c in paired.values()])]))
    return text


def protocol_text(protocol: str, windows: Metrics | None, config: PipelineConfig) -> str:
    """One sentence on the held-out split figures come from."""
    if protocol != "p3" or not windows:
        name = "P2" if config.data.format == "simulator" else "P1"
        return (f"Next-watch prediction (docs/PROTOCOL.md {name}): each user's last watch is the "
                "test target, the one before it the validation target.")
    day = lambda t: datetime.datetime.fromtimestamp(  # noqa: E731
        t, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M")
    return ("Next-watch prediction under the global time split (docs/PROTOCOL.md P3): the "
            f"generator trained only on watches before {day(windows['validation_start'])} UTC; "
            f"the validation window runs to {day(windows['test_start'])}, the test window to "
            "the end of the log. A query is a user's first watch inside a window (the user has "
            "an earlier watch), its history every watch before it, example age 0 as served.")


def section_served_age(metrics: Metrics, config: PipelineConfig, plots_dir: str) -> str | None:
    """The fresh slice and the age profile (sources that log upload times)."""
    models = _sources(metrics)
    if not models or "fresh" not in metrics[models[0]].get("test", {}):
        return None
    rows: list[tuple] = []
    for split in REPORTED_SPLITS:
        rows += _source_rows(metrics, models, split, lambda figures: [
            figures["fresh"]["queries"], *[figures["fresh"].get(c) for c in P1_COLUMNS]])
    text = ("The same queries restricted to targets uploaded at most 7 days before the query "
            "(the fresh slice), and the age profile of the top 100: for each bucket of video "
            "age at query time, the share of recommended slots against the share of actual "
            "targets (the paper's Figure 4).\n\n"
            + _table(("split", "model", "fresh queries", *P1_COLUMNS), rows))
    profiles = {m: metrics[m]["test"]["age_profile"] for m in models}
    first = next(iter(profiles.values()))
    text += "\n\n" + _table(("test: video age", "targets", *[f"{m} top-100" for m in models]), [
        (bucket, first["target_share"][i], *[p["recommended_share"][i]
                                              for p in profiles.values()])
        for i, bucket in enumerate(first["buckets"])])
    path = plots.age_profile(profiles, os.path.join(plots_dir, "age_profile.png"))
    return text + "\n\n" + _image(plots_dir, path, "age profile")


def section_training(metrics: Metrics, config: PipelineConfig, plots_dir: str) -> str | None:
    retrieval = metrics.get("retrieval")
    if not retrieval:
        return None
    cg = config.candidate_generation
    history = retrieval.get("history", [])
    epoch_s = [h["seconds"] for h in history if "seconds" in h]
    text = (f"Loss `{retrieval['loss']}` ({cg.softmax.num_negatives} negatives, "
            f"{cg.softmax.proposal} proposal), batch {cg.training.batch_size}, "
            f"{cg.training.optimizer} at {cg.training.learning_rate}. "
            f"{retrieval['epochs_run']} epochs run (at most {cg.training.epochs}, patience "
            f"{cg.training.patience}); epoch {retrieval['best_epoch']} chosen on validation "
            f"{cg.training.selection_metric}. {retrieval['train_examples_per_second']:,} "
            "training examples/s")
    if epoch_s:
        text += f", {sum(epoch_s) / len(epoch_s):.1f}s per epoch with its validation"
    path = plots.training_curves(metrics, os.path.join(plots_dir, "training_curves.png"),
                                 cg.training.selection_metric)
    return text + ".\n\n" + _image(plots_dir, path, "training curves") + \
        "\n\nTensorBoard: `tensorboard --logdir " + "tensorboard` in the run folder (loss, " \
        "validation metrics, and the video embeddings with titles under Projector)."


def section_ann(metrics: Metrics, config: PipelineConfig, plots_dir: str) -> str | None:
    figures = metrics.get("ann")
    if not figures:
        return None
    rows = [("videos", figures["corpus"]),
            ("ScaNN tuned on (validation queries)", figures.get("tuning_queries")),
            ("measured on (test queries, not tuned on)", figures["queries"]),
            ("ScaNN recall@10 vs exact", figures["recall@10_vs_exact"]),
            (f"ScaNN recall@{figures['k']} vs exact",
             figures.get(f"recall@{figures['k']}_vs_exact")),
            ("brute force queries/s", figures["brute_force_qps"]),
            ("ScaNN queries/s", figures["scann_qps"]),
            ("ScaNN build s", figures["scann_build_seconds"])]
    exports = metrics.get("exports", {})
    text = _table(("serving", "value"), rows)
    if not figures.get("scann_settings", {}).get("num_leaves"):
        text += ("\n\nThis corpus is small enough that the ScaNN tuner chose exact search (no "
                 "tree, no quantisation), so ScaNN is not faster here than TensorFlow brute "
                 "force; its speed-up at 1M videos is in benchmarks/README.md.")
    if exports:
        text += (f"\n\nExports, version set {exports['version']} (every servable at that "
                 f"version; `{exports['models_config']}` serves exactly this set):\n"
                 + "\n".join(f"- `{name}`: `{path}`"
                             for name, path in sorted(exports["models"].items())))
    path = plots.ann(metrics, os.path.join(plots_dir, "ann.png"))
    return text + "\n\n" + _image(plots_dir, path, "ANN recall vs speed")


def section_ranking(metrics: Metrics, config: PipelineConfig, plots_dir: str) -> str | None:
    """The ranker on test pages against its baselines, and its calibration (simulator)."""
    ranking = metrics.get("ranking")
    if not ranking:
        return None
    if "test" not in ranking or "baselines" not in ranking:
        return scalar_table(ranking)

    def row(name: str, figures: Metrics) -> tuple:
        cal = figures.get("calibration", {})
        return (name, figures["weighted_per_user_loss"], figures["click_auc"],
                cal.get("slope", "-"), cal.get("r2", "-"))

    rows = [row("weighted LR ranker, exp(logit)", ranking["test"])]
    names = {"candidate_generation_score": "candidate-generation score u·v",
             "oracle_true_expected_watch_time": "oracle: true expected watch time"}
    rows += [row(names.get(k, k), v) for k, v in ranking["baselines"].items()]
    n = ranking["impressions"]
    text = (f"Impressions: {ranking['source']}; train {n['train']:,}, validation "
            f"{n['validation']:,}, test {n['test']:,}; best epoch {ranking['best_epoch']} of "
            f"{ranking['epochs_run']}.\n\n"
            + _table(("ranking by", "weighted per-user loss (lower is better)", "click AUC",
                      "calibration slope", "calibration R²"), rows))
    paired = ranking.get("ranker_vs_generator_order")
    if paired:
        text += ("\n\nWeighted per-user loss of the candidate generator's order minus the "
                 f"ranker's on the same test pages: {_interval(paired)} (difference [95% "
                 f"interval], paired bootstrap over the {paired['pages']:,} pages with a pair, "
                 f"{RESAMPLES:,} resamples; positive = the ranker orders better).")
    model = ranking.get("config", {})
    if model.get("negatives") == "all_impressions":
        text += ("\n\nEvery impression is also a negative of weight 1 in training, so exp(logit) "
                 "estimates E[T] itself.")
    platt = ranking.get("logit_calibration")
    if platt:
        text += (f"\n\nServed logit = {platt['scale']:.3f} · logit {platt['shift']:+.3f}, fitted "
                 f"on validation (training objective {platt['objective_before']:.4f} → "
                 f"{platt['objective_after']:.4f}); the order of every page is unchanged.")
    corrected = ranking["test"].get("calibration_corrected")
    if corrected:
        text += (f"\n\nWith the click head, exp(logit) (1 - P) has calibration slope "
                 f"{corrected['slope']:.3f} (R² {corrected['r2']:.3f}): exp(logit) estimates "
                 "E[T] / (1 - P), not E[T].")
    ranker = metrics.get("exports", {}).get("models", {}).get("ranker")
    if ranker:
        text += f"\n\nExport: `{ranker}`"
    path = plots.calibration(metrics, os.path.join(plots_dir, "calibration.png"))
    return text + ("\n\n" + _image(plots_dir, path, "calibration by decile") if path else "")


SECTIONS: list[tuple[str, Section]] = [
    ("Candidate generation vs popularity", section_p1),
    ("Fresh videos: the age profile", section_served_age),
    ("The other protocol", section_compare_protocol),
    ("Training", section_training),
    ("Serving: ANN recall and speed", section_ann),
    ("Ranking", section_ranking),
    ("Data", section_data),
    ("Run: time per stage and config", section_run),
]


def write_report(run_dir: str, config: PipelineConfig, metrics: Metrics,
                 sections: list[tuple[str, Section]] = SECTIONS) -> str:
    """Write report.md and plots/*.png into run_dir (atomically, file by file); returns the path."""
    plots_dir = os.path.join(run_dir, "plots")
    parts = [f"# Run `{config.name}`", summary(metrics, config)]
    for title, section in sections:
        text = section(metrics, config, plots_dir)
        if text:
            parts.append(f"## {title}\n\n{text.strip()}")
    path = os.path.join(run_dir, "report.md")
    tmp = f"{path}.tmp-{uuid.uuid4().hex[:8]}"
    with open(tmp, "w") as f:
        f.write("\n\n".join(parts) + "\n")
    os.replace(tmp, path)
    return path
