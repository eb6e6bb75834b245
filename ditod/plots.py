"""Training curves and AP charts (PNG) from a run's ``metrics.json`` (detectron2's JSONWriter
lines, plus the evaluation lines ``tools/train_net.py --eval-only`` appends)."""

import json
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from .file_io import atomic_path

__all__ = ["read_metrics", "save_figure", "write_plots"]


def read_metrics(path) -> list[dict]:
    """The JSON lines of ``metrics.json``; a line cut short by a killed run is skipped."""
    records = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    if not records:
        raise ValueError(f"{path}: no metrics (is it a detectron2 metrics.json?)")
    return records


def _series(records, key):
    points = [(r["iteration"], r[key]) for r in records if key in r and "iteration" in r]
    return [p for p in points if isinstance(p[1], int | float) and math.isfinite(p[1])]


def _ap_key(record_key: str, metric: str) -> bool:
    """``bbox/AP`` or ``<dataset>/bbox/AP`` (eval-only lines carry the dataset)."""
    return record_key == f"bbox/{metric}" or record_key.endswith(f"/bbox/{metric}")


def save_figure(figure, path: Path) -> Path:
    """Write ``figure`` as a PNG to ``path`` (atomically) and close it."""
    try:
        with atomic_path(path) as tmp:
            figure.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    finally:
        plt.close(figure)
    return path


def write_plots(metrics_file, out_dir) -> list[Path]:
    """Write ``loss.png`` (total and per-term losses), ``lr.png``, ``ap.png`` (AP, AP50, AP75
    per evaluation) and ``ap_per_class.png`` (the last evaluation) into ``out_dir``, each when
    the metrics hold its values. Returns the paths written."""
    records = read_metrics(metrics_file)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    loss_keys = sorted({k for r in records for k in r if k.startswith("loss_")})
    if _series(records, "total_loss"):
        figure, axes = plt.subplots(figsize=(7, 4))
        for key in ["total_loss", *loss_keys]:
            x, y = zip(*_series(records, key))
            axes.plot(x, y, label=key, linewidth=2.2 if key == "total_loss" else 1)
        axes.set(xlabel="iteration", ylabel="loss", title="training loss")
        axes.legend(fontsize=7)
        axes.grid(alpha=0.3)
        written.append(save_figure(figure, out_dir / "loss.png"))
    if _series(records, "lr"):
        figure, axes = plt.subplots(figsize=(7, 3))
        axes.plot(*zip(*_series(records, "lr")))
        axes.set(xlabel="iteration", ylabel="learning rate", title="learning rate")
        axes.grid(alpha=0.3)
        written.append(save_figure(figure, out_dir / "lr.png"))
    evaluations = [r for r in records if any(_ap_key(k, "AP") for k in r)]
    if evaluations:
        figure, axes = plt.subplots(figsize=(7, 4))
        for metric in ("AP", "AP50", "AP75"):
            points = [
                (r["iteration"], v)
                for r in evaluations
                for k, v in r.items()
                if _ap_key(k, metric) and math.isfinite(v)
            ]
            if points:
                axes.plot(*zip(*sorted(points)), marker="o", label=f"bbox {metric}")
        axes.set(xlabel="iteration", ylabel="AP (%)", title="evaluation", ylim=(0, 100))
        axes.legend()
        axes.grid(alpha=0.3)
        written.append(save_figure(figure, out_dir / "ap.png"))
        last = evaluations[-1]
        per_class = {
            k.rsplit("/AP-", 1)[1]: v
            for k, v in last.items()
            if "/bbox/AP-" in f"/{k}" and isinstance(v, int | float)
        }
        if per_class:
            names = list(per_class)
            values = [v if math.isfinite(v) else 0.0 for v in per_class.values()]
            figure, axes = plt.subplots(figsize=(max(5, 0.7 * len(names) + 2), 4))
            bars = axes.bar(names, values, color="tab:blue")
            axes.bar_label(bars, fmt="%.1f", fontsize=8)
            axes.set(
                ylabel="bbox AP (%)",
                ylim=(0, 105),
                title=f"per-class bbox AP at iteration {last['iteration']}",
            )
            axes.tick_params(axis="x", rotation=30)
            written.append(save_figure(figure, out_dir / "ap_per_class.png"))
    return written
