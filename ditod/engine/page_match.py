"""What a user sees, counted: of a page's ground-truth blocks, how many the shown detections
find (IoU ≥ 0.5, right class), and how many shown boxes find nothing."""

import json
from pathlib import Path

import torch
from detectron2.structures import Boxes, pairwise_iou

__all__ = ["match_page", "match_predictions"]


def match_page(
    gt: list[tuple[str, list]], shown: list[tuple[str, float, list]], iou_threshold: float = 0.5
) -> tuple[int, int]:
    """Greedy one-to-one matching, highest score first, of shown detections to ground truth of
    the same class with IoU ≥ ``iou_threshold``.

    Args:
        gt: ``(class name, [x0, y0, x1, y1])`` per ground-truth block.
        shown: ``(class name, score, [x0, y0, x1, y1])`` per shown detection.

    Returns:
        ``(matched ground-truth blocks, shown detections matching none)``.
    """
    if not gt or not shown:
        return 0, len(shown)
    shown = sorted(shown, key=lambda d: -d[1])
    ious = pairwise_iou(
        Boxes(torch.tensor([d[2] for d in shown], dtype=torch.float32)),
        Boxes(torch.tensor([g[1] for g in gt], dtype=torch.float32)),
    )
    taken = set()
    false = 0
    for i, (name, _, _) in enumerate(shown):
        candidates = [
            (ious[i, j].item(), j)
            for j, (gt_name, _) in enumerate(gt)
            if gt_name == name and j not in taken and ious[i, j] >= iou_threshold
        ]
        if candidates:
            taken.add(max(candidates)[1])
        else:
            false += 1
    return len(taken), false


def match_predictions(coco_jsons, predictions_dir, score_threshold: float) -> dict:
    """Match ``tools/infer.py``'s ``predictions/<name>.json`` (detections with a score of at
    least ``score_threshold``: the boxes its overlays show) to the COCO ground truth of the same
    images. Returns ``matched_fraction`` (of ground-truth blocks), ``false_fraction`` (of shown
    boxes), and the counts behind them, per class too."""
    predictions_dir = Path(predictions_dir)
    totals = {"gt": 0, "matched": 0, "shown": 0, "false": 0}
    per_class: dict[str, dict] = {}
    for coco_json in coco_jsons:
        coco = json.loads(Path(coco_json).read_text(encoding="utf-8"))
        names = {c["id"]: c["name"] for c in coco["categories"]}
        for image in coco["images"]:
            path = predictions_dir / f"{Path(image['file_name']).stem}.json"
            if not path.is_file():
                raise FileNotFoundError(f"{path}: no predictions for {image['file_name']}")
            detections = json.loads(path.read_text(encoding="utf-8"))["detections"]
            shown = [
                (d["category"], d["score"], d["bbox"])
                for d in detections
                if d["score"] >= score_threshold
            ]
            gt = [
                (
                    names[a["category_id"]],
                    [
                        a["bbox"][0],
                        a["bbox"][1],
                        a["bbox"][0] + a["bbox"][2],
                        a["bbox"][1] + a["bbox"][3],
                    ],
                )
                for a in coco["annotations"]
                if a["image_id"] == image["id"]
            ]
            for name in {n for n, _ in gt} | {d[0] for d in shown}:
                matched, false = match_page(
                    [g for g in gt if g[0] == name], [d for d in shown if d[0] == name]
                )
                counts = per_class.setdefault(name, dict.fromkeys(totals, 0))
                update = {
                    "gt": sum(g[0] == name for g in gt),
                    "matched": matched,
                    "shown": sum(d[0] == name for d in shown),
                    "false": false,
                }
                for key, value in update.items():
                    counts[key] += value
                    totals[key] += value
    return {
        "matched_fraction": totals["matched"] / max(totals["gt"], 1),
        "false_fraction": totals["false"] / max(totals["shown"], 1),
        **totals,
        "per_class": per_class,
    }
