"""An ablation: variants (config overrides) × seeds trained with one budget, and the table of
their final AP — per class and mAP, mean ± std over seeds — as JSON, Markdown and a bar plot."""

import copy
import json
import math
import statistics
from pathlib import Path

import yaml

from ..file_io import write_json_atomic, write_text_atomic
from ..plots import read_metrics, save_figure

__all__ = [
    "final_ap",
    "mean_std",
    "mean_std_text",
    "merged_classes_ap",
    "read_variants",
    "report_figure",
    "report_markdown",
    "summarize",
    "write_report",
]


def read_variants(path) -> dict[str, list[str]]:
    """``{name: [KEY, VALUE, …]}`` from a YAML mapping of variant names to their config
    overrides (``{KEY: VALUE}``; an empty mapping is the config as it is)."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise FileNotFoundError(f"{path}: cannot read the variants: {error.strerror}") from None
    if not isinstance(data, dict) or not data:
        raise ValueError(f"{path}: expected a mapping of variant names to config overrides")
    variants = {}
    for name, overrides in data.items():
        overrides = overrides or {}
        if not isinstance(overrides, dict):
            raise ValueError(f"{path}: variant '{name}': expected a mapping KEY: VALUE")
        values = {k: json.dumps(v) if isinstance(v, list) else v for k, v in overrides.items()}
        variants[str(name)] = [str(x) for pair in values.items() for x in pair]
    return variants


def final_ap(metrics_file) -> dict[str, float] | None:
    """The last evaluation's bbox AP in ``metrics.json``: ``{"AP": …, "AP-<class>": …}``, or
    None when the run has not evaluated."""
    if not Path(metrics_file).is_file():
        return None
    evaluations = [r for r in read_metrics(metrics_file) if "bbox/AP" in r]
    if not evaluations:
        return None
    last = evaluations[-1]
    return {
        k.removeprefix("bbox/"): float(v)
        for k, v in last.items()
        if k == "bbox/AP" or k.startswith("bbox/AP-")
    }


def merged_classes_ap(gt_json, results_json, classes) -> float:
    """COCO bbox AP (0–100) of ``classes`` taken as one class: their boxes found whatever the
    label among them. Against their mean per-class AP it splits what these classes lose into
    boxes not found and boxes found with the other label (look-alikes told apart only by text).

    Args:
        gt_json: COCO ground truth (path or dict).
        results_json: COCO results of that ground truth (``coco_instances_results.json``).
        classes: category names in the ground truth.
    """
    from faster_coco_eval import COCO, COCOeval_faster

    gt = copy.deepcopy(
        gt_json
        if isinstance(gt_json, dict)
        else json.loads(Path(gt_json).read_text(encoding="utf-8"))
    )
    by_name = {c["name"]: c["id"] for c in gt["categories"]}
    missing = [name for name in classes if name not in by_name]
    if missing:
        raise ValueError(f"classes {missing} are not in the ground truth ({sorted(by_name)})")
    ids = {by_name[name] for name in classes}
    merged = min(ids)
    for annotation in gt["annotations"]:
        if annotation["category_id"] in ids:
            annotation["category_id"] = merged
    results = json.loads(Path(results_json).read_text(encoding="utf-8"))
    results = [{**r, "category_id": merged} for r in results if r["category_id"] in ids]
    if not results:
        return 0.0
    ground_truth = COCO(gt)
    evaluation = COCOeval_faster(ground_truth, ground_truth.loadRes(results), "bbox")
    evaluation.params.catIds = [merged]
    evaluation.evaluate()
    evaluation.accumulate()
    evaluation.summarize()
    return 100.0 * float(evaluation.stats[0])


def mean_std(values: list[float]) -> dict:
    """``{"mean", "std"}`` of the finite ``values`` (std 0 for a single value)."""
    values = [v for v in values if math.isfinite(v)]
    return {
        "mean": statistics.fmean(values) if values else float("nan"),
        "std": statistics.stdev(values) if len(values) > 1 else 0.0,
    }


def summarize(runs: dict[str, list[dict]], text_only_classes=()) -> dict:
    """Per variant, from its runs' :func:`final_ap` (one per seed): ``map`` and each class's AP
    as lists over seeds with mean and std, and ``text_only_ap`` (the mean AP of
    ``text_only_classes``, per seed) when given."""
    summary = {}
    for variant, results in runs.items():
        classes = sorted({k.removeprefix("AP-") for r in results for k in r if k != "AP"})
        entry = {"map": [r["AP"] for r in results]}
        entry["per_class"] = {c: [r.get(f"AP-{c}", float("nan")) for r in results] for c in classes}
        if text_only_classes:
            entry["text_only_ap"] = [
                statistics.fmean(r[f"AP-{c}"] for c in text_only_classes) for r in results
            ]
        entry["stats"] = {
            key: mean_std(entry[key]) for key in ("map", "text_only_ap") if key in entry
        }
        entry["stats"].update({c: mean_std(v) for c, v in entry["per_class"].items()})
        summary[variant] = entry
    return summary


def mean_std_text(stats: dict) -> str:
    """``mean ± std`` of :func:`mean_std`'s result, one decimal."""
    return f"{stats['mean']:.1f} ± {stats['std']:.1f}"


def report_markdown(summary: dict, title: str = "Ablation") -> str:
    """The ablation table as Markdown: a row per variant with each class's AP, mAP and the
    text-only classes' AP, mean ± std over seeds."""
    classes = sorted({c for entry in summary.values() for c in entry["per_class"]})
    extra = all("text_only_ap" in e for e in summary.values())
    seeds = max(len(e["map"]) for e in summary.values())
    header = ["variant", *classes, "mAP", *(["text-only classes"] if extra else [])]
    lines = [
        f"# {title}",
        "",
        f"bbox AP, mean ± std over {seeds} seed(s)",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for variant, entry in summary.items():
        stats = entry["stats"]
        row = [variant, *(mean_std_text(stats[c]) for c in classes), mean_std_text(stats["map"])]
        row += [mean_std_text(stats["text_only_ap"])] if extra else []
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def report_figure(summary: dict, title: str = "Ablation"):
    """A matplotlib figure: per class, mAP and text-only AP, a bar per variant (mean, std as the
    error bar)."""
    import matplotlib.pyplot as plt

    variants = list(summary)
    classes = sorted({c for entry in summary.values() for c in entry["per_class"]})
    extra = ["text_only_ap"] if all("text_only_ap" in e for e in summary.values()) else []
    seeds = max(len(e["map"]) for e in summary.values())
    groups = [*classes, "mAP", *(["text-only"] if extra else [])]
    keys = [*classes, "map", *extra]
    figure, axes = plt.subplots(figsize=(min(18, max(8, 0.45 * len(groups) * len(variants))), 4.5))
    width = 0.8 / len(variants)
    for k, variant in enumerate(variants):
        stats = summary[variant]["stats"]
        positions = [g + (k - (len(variants) - 1) / 2) * width for g in range(len(groups))]
        axes.bar(
            positions,
            [stats[key]["mean"] for key in keys],
            width,
            yerr=[stats[key]["std"] for key in keys],
            capsize=2,
            label=variant,
        )
    axes.set_xticks(range(len(groups)), groups, rotation=30, ha="right")
    axes.set_ylabel("bbox AP")
    axes.set_title(f"{title} (mean ± std over {seeds} seed(s))")
    axes.legend(fontsize=8)
    return figure


def write_report(summary: dict, out_dir, title: str = "Ablation") -> list[Path]:
    """``ablation.json``, ``ablation.md`` (:func:`report_markdown`) and ``ablation.png``
    (:func:`report_figure`) into ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    markdown, data = out_dir / "ablation.md", out_dir / "ablation.json"
    write_text_atomic(markdown, report_markdown(summary, title))
    write_json_atomic(data, summary, indent=2)
    return [data, markdown, save_figure(report_figure(summary, title), out_dir / "ablation.png")]
