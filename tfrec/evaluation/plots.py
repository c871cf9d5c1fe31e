"""PNG plots of a run's metrics (matplotlib, Agg backend: no display needed).

Each function takes the metrics dict (metrics.json) and an output path, writes the PNG
atomically and returns the path, or returns None when the metrics it needs are absent.
"""
import os
import re
import uuid
from collections.abc import Iterable
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

COLORS = {"retrieval": "#1f77b4", "popularity": "#7f7f7f"}


def _save(fig: Figure, path: str) -> str:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.tmp-{uuid.uuid4().hex[:8]}.png"
    fig.tight_layout()
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)
    return path


def recall_ks(figures: Iterable[str]) -> list[int]:
    """The sorted K of the recall@K entries of one split's figures."""
    return sorted(int(m.group(1)) for m in map(re.compile(r"^recall@(\d+)$").match, figures)
                  if m)


def training_curves(metrics: dict[str, Any], path: str, selection_metric: str = "map@100"
                    ) -> str | None:
    """Training loss and validation metrics per epoch; the chosen epoch marked."""
    retrieval = metrics.get("retrieval")
    if not retrieval or not retrieval.get("history"):
        return None
    history = retrieval["history"]
    epochs = [h["epoch"] for h in history]
    fig, (ax_loss, ax_val) = plt.subplots(1, 2, figsize=(10, 3.8))
    ax_loss.plot(epochs, [h["loss"] for h in history], "o-", color=COLORS["retrieval"])
    ax_loss.set(title=f"training loss ({retrieval.get('loss', '')} softmax)", xlabel="epoch",
                ylabel="mean loss over the epoch")
    # Figures of one scale (Recall@50+ would flatten them).
    names = [n for n in ("recall@10", "ndcg@10", "map@100") if n in history[0]]
    for name in names:
        ax_val.plot(epochs, [h[name] for h in history], "o-", ms=3, label=name)
    best = retrieval.get("best_epoch")
    for ax in (ax_loss, ax_val):
        if best:
            ax.axvline(best, color="black", ls=":", lw=1,
                       label=f"chosen epoch {best} (best {selection_metric})")
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax_val.set(title="validation (full ranking)", xlabel="epoch", ylabel="value")
    top = max(h[n] for h in history for n in names)
    ax_val.set_ylim(top=top * 1.35)  # room for the legend above the curves
    ax_val.legend(fontsize=8, loc="upper left", ncol=2)
    return _save(fig, path)


def recall_at_k(metrics: dict[str, Any], path: str) -> str | None:
    """Recall@K against K for every model with P1 figures, validation and test."""
    models = [m for m in ("retrieval", "popularity") if m in metrics]
    if not models:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    for ax, split in zip(axes, ("test", "validation")):
        for model in models:
            figures = metrics[model][split]
            ks = recall_ks(figures)
            ax.plot(ks, [figures[f"recall@{k}"] for k in ks], "o-", ms=4, label=model,
                    color=COLORS.get(model))
        ax.set_xscale("log")
        ax.set(title=f"Recall@K, {split} ({metrics[models[0]][split]['queries']} users)",
               xlabel="K (log scale)", ylabel="Recall@K (hit rate of the next watch)")
        ax.grid(alpha=0.3, which="both")
        ax.legend()
    return _save(fig, path)


def ann(metrics: dict[str, Any], path: str) -> str | None:
    """Recall@10 against exact search vs queries/s, ScaNN and brute force."""
    figures = metrics.get("ann")
    if not figures:
        return None
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    points = [("brute force (exact)", figures["brute_force_qps"], 1.0, "#7f7f7f"),
              ("ScaNN", figures["scann_qps"], figures["recall@10_vs_exact"], "#d62728")]
    for label, qps, recall, color in points:
        ax.scatter([qps], [recall], s=60, color=color, label=f"{label}: {qps:,.0f} q/s")
    low = min(p[2] for p in points)
    ax.set_ylim(min(0.9, low - 0.02), 1.01)
    ax.set_xlim(0, max(p[1] for p in points) * 1.15)
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda x, _: f"{x:,.0f}"))
    ax.set(title=f"retrieval serving, {figures['corpus']:,} videos, batches of 256",
           xlabel="queries per second", ylabel="recall@10 vs exact search")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower left")
    return _save(fig, path)


def timings(metrics: dict[str, Any], path: str) -> str | None:
    """Seconds per stage (when its outputs were computed)."""
    seconds = metrics.get("timings_s")
    if not seconds:
        return None
    names = list(seconds)
    fig, ax = plt.subplots(figsize=(6.5, 0.5 * len(names) + 1.2))
    ax.barh(names[::-1], [seconds[n] for n in names[::-1]], color="#1f77b4")
    for i, name in enumerate(names[::-1]):
        ax.text(seconds[name], i, f" {seconds[name]:.1f}s", va="center", fontsize=8)
    ax.set(title="time per stage", xlabel="seconds")
    ax.set_xlim(0, max(seconds.values()) * 1.18 + 1e-9)
    ax.grid(alpha=0.3, axis="x")
    return _save(fig, path)


def calibration(metrics: dict[str, Any], path: str) -> str | None:
    """Mean true vs mean predicted expected watch time by decile of the prediction (ranking test),
    for exp(logit) and, with a click head, exp(logit) * (1 - P)."""
    test = metrics.get("ranking", {}).get("test", {})
    curves = [(name, test[key]) for key, name in (
        ("calibration", "exp(logit)"), ("calibration_corrected", "exp(logit) (1 - P)"))
        if key in test]
    if not curves:
        return None
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    top = 0.0
    for (name, cal), color in zip(curves, ("#1f77b4", "#ff7f0e")):
        x = [b["mean_predicted"] for b in cal["by_bin"]]
        y = [b["mean_actual"] for b in cal["by_bin"]]
        top = max(top, max(x), max(y))
        ax.plot(x, y, "o-", color=color,
                label=f"{name}: slope {cal['slope']:.2f}, R² {cal['r2']:.2f}")
    ax.plot([0, top], [0, top], "--", color="#7f7f7f", label="perfect calibration")
    ax.set(title="ranker calibration by decile (test)", xlabel="predicted watch time (s)",
           ylabel="true expected watch time (s)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    return _save(fig, path)


def age_profile(profiles: dict[str, dict[str, Any]], path: str) -> str | None:
    """Bars per video-age bucket: the share of actual targets and each model's share of top-100
    slots (the paper's Figure 4). profiles: {model: `freshness.age_profile` result}."""
    if not profiles:
        return None
    first = next(iter(profiles.values()))
    buckets = first["buckets"]
    series = {"actual targets": first["target_share"],
              **{f"{m} top-100": p["recommended_share"] for m, p in profiles.items()}}
    fig, ax = plt.subplots(figsize=(9, 3.8))
    width = 0.8 / len(series)
    colors = {"actual targets": "#2ca02c", **{f"{m} top-100": c for m, c in COLORS.items()}}
    for i, (name, shares) in enumerate(series.items()):
        ax.bar([j + (i - (len(series) - 1) / 2) * width for j in range(len(buckets))], shares,
               width, label=name, color=colors.get(name))
    ax.set_xticks(range(len(buckets)), buckets, rotation=20)
    ax.set(title="test: video age at query time", xlabel="days since upload", ylabel="share")
    ax.grid(alpha=0.3, axis="y")
    ax.legend()
    return _save(fig, path)
