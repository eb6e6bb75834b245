"""What a user sees, counted: of a page's ground-truth blocks, how many the shown detections
find (IoU ≥ 0.5, right class), and how many shown boxes find nothing.

A model's classes can differ from the ground truth's (the demo's 10 CDLA classes on PubLayNet's
5): ``class_map`` names, per predicted class, the ground-truth classes it counts as; a predicted
class mapped to nothing (a page header where the ground truth does not mark headers) is not
counted, neither found nor false."""

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from detectron2.structures import Boxes, pairwise_iou

__all__ = ["PageMatch", "match_page", "match_predictions"]


@dataclass
class PageMatch:
    """Indices of the ground-truth blocks found and of the shown detections that found none."""

    found: list[int]
    false: list[int]


def _counts_as(class_map: dict | None, name: str) -> tuple[str, ...]:
    return (name,) if class_map is None else tuple(class_map.get(name, ()))


def match_page(
    gt: list[tuple[str, list]],
    shown: list[tuple[str, float, list]],
    iou_threshold: float = 0.5,
    class_map: dict | None = None,
) -> PageMatch:
    """Greedy one-to-one matching, highest score first, of shown detections to ground truth of
    the same class (or one ``class_map`` lets it count as) with IoU ≥ ``iou_threshold``.

    Args:
        gt: ``(class name, [x0, y0, x1, y1])`` per ground-truth block.
        shown: ``(class name, score, [x0, y0, x1, y1])`` per shown detection; detections of a
            class that ``class_map`` maps to nothing are skipped.
    """
    order = sorted(
        (i for i, d in enumerate(shown) if _counts_as(class_map, d[0])), key=lambda i: -shown[i][1]
    )
    if not gt or not order:
        return PageMatch([], order)
    ious = pairwise_iou(
        Boxes(torch.tensor([shown[i][2] for i in order], dtype=torch.float32)),
        Boxes(torch.tensor([g[1] for g in gt], dtype=torch.float32)),
    )
    found, false = [], []
    for row, i in enumerate(order):
        allowed = _counts_as(class_map, shown[i][0])
        candidates = [
            (ious[row, j].item(), j)
            for j, (gt_name, _) in enumerate(gt)
            if gt_name in allowed and j not in found and ious[row, j] >= iou_threshold
        ]
        if candidates:
            found.append(max(candidates)[1])
        else:
            false.append(i)
    return PageMatch(found, false)


def _xyxy(box: list) -> list:
    return [box[0], box[1], box[0] + box[2], box[1] + box[3]]


def match_predictions(
    coco_jsons, predictions_dir, score_threshold: float, class_map: dict | None = None
) -> dict:
    """Match ``tools/infer.py``'s ``predictions/<name>.json`` (detections with a score of at
    least ``score_threshold``: the boxes its overlays show) to the COCO ground truth of the same
    images. Returns ``matched_fraction`` (of ground-truth blocks), ``false_fraction`` (of shown
    boxes, of the classes ``class_map`` counts), the counts behind them, ``per_class`` (ground
    truth found by its class, shown and false by the predicted class) and
    ``pages_without_detection``."""
    predictions_dir = Path(predictions_dir)
    totals = {"gt": 0, "matched": 0, "shown": 0, "false": 0}
    per_class: dict[str, dict] = {}
    empty_pages = 0

    def count(name: str, key: str) -> None:
        per_class.setdefault(name, dict.fromkeys(totals, 0))[key] += 1
        totals[key] += 1

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
                if d["score"] >= score_threshold and _counts_as(class_map, d["category"])
            ]
            gt = [
                (names[a["category_id"]], _xyxy(a["bbox"]))
                for a in coco["annotations"]
                if a["image_id"] == image["id"]
            ]
            empty_pages += not shown
            result = match_page(gt, shown, class_map=class_map)
            for name, _ in gt:
                count(name, "gt")
            for j in result.found:
                count(gt[j][0], "matched")
            for name, _, _ in shown:
                count(name, "shown")
            for i in result.false:
                count(shown[i][0], "false")
    return {
        "matched_fraction": totals["matched"] / max(totals["gt"], 1),
        "false_fraction": totals["false"] / max(totals["shown"], 1),
        **totals,
        "pages_without_detection": empty_pages,
        "per_class": per_class,
    }
