"""COCO bbox evaluation, 500 images × 10 classes: the evaluator this project runs (detectron2's
``COCOEvaluator`` fast path, faster-coco-eval's ``COCOeval_faster`` here) vs pycocotools'
``COCOeval``, same ground truth and detections, in one process; median seconds of each (timed
by ``torch.utils.benchmark``).

    python benchmarks/coco_eval.py [--images 500] [--out results.json]
"""

import argparse
import contextlib
import io
import os

import ditod  # noqa: F401  (puts faster-coco-eval behind detectron2's fast path)

# isort: split
import numpy as np
from _harness import measure, write_result
from detectron2.evaluation import coco_evaluation
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval


def synthetic_coco(num_images: int, num_classes: int, seed: int = 0):
    """Ground truth (15–30 boxes per page) and detections (jittered, dropped, false positives)."""
    rng = np.random.default_rng(seed)
    images, annotations, detections = [], [], []
    for image_id in range(1, num_images + 1):
        images.append(
            {"id": image_id, "width": 800, "height": 1000, "file_name": f"{image_id}.png"}
        )
        for _ in range(rng.integers(15, 31)):
            x, y = rng.uniform(0, 700), rng.uniform(0, 900)
            w, h = rng.uniform(10, 100), rng.uniform(5, 100)
            category = int(rng.integers(1, num_classes + 1))
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": category,
                    "bbox": [x, y, w, h],
                    "area": w * h,
                    "iscrowd": 0,
                }
            )
            if rng.random() < 0.9:
                jitter = rng.normal(0, 4, 4)
                detections.append(
                    {
                        "image_id": image_id,
                        "category_id": category,
                        "bbox": [
                            x + jitter[0],
                            y + jitter[1],
                            max(1, w + jitter[2]),
                            max(1, h + jitter[3]),
                        ],
                        "score": float(rng.uniform(0.3, 1)),
                    }
                )
        for _ in range(rng.integers(5, 15)):
            detections.append(
                {
                    "image_id": image_id,
                    "category_id": int(rng.integers(1, num_classes + 1)),
                    "bbox": [*rng.uniform(0, 700, 2), *rng.uniform(10, 100, 2)],
                    "score": float(rng.uniform(0, 0.6)),
                }
            )
    categories = [{"id": i, "name": f"class{i}"} for i in range(1, num_classes + 1)]
    gt = COCO()
    gt.dataset = {"images": images, "annotations": annotations, "categories": categories}
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
    return gt, detections


def evaluate(evaluator_class, gt, detections) -> np.ndarray:
    """loadRes + evaluate + accumulate + summarize: the 12 COCO stats."""
    with contextlib.redirect_stdout(io.StringIO()):
        evaluation = evaluator_class(gt, gt.loadRes(detections), "bbox")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    return np.asarray(evaluation.stats)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--min-run-time", type=float, default=5.0, help="seconds timed each")
    parser.add_argument("--out", default="benchmarks/results/coco_eval.json")
    args = parser.parse_args()
    gt, detections = synthetic_coco(args.images, args.classes)
    ours_class = coco_evaluation.COCOeval_opt
    ours = measure(lambda: evaluate(ours_class, gt, detections), args.min_run_time).median
    theirs = measure(lambda: evaluate(COCOeval, gt, detections), args.min_run_time).median
    ours_stats = evaluate(ours_class, gt, detections)
    reference_stats = evaluate(COCOeval, gt, detections)
    summary = {
        "benchmark": f"COCO bbox evaluation, {args.images} images × {args.classes} classes, "
        f"{len(detections)} detections, {ours_class.__module__}.{ours_class.__name__} vs "
        "pycocotools COCOeval",
        "device": f"cpu ({os.cpu_count()} cores)",
        "speedup": theirs / ours,
        "seconds": ours,
        "seconds_baseline": theirs,
        "max_stats_diff": float(np.abs(ours_stats - reference_stats).max()),
        "stats": ours_stats.round(6).tolist(),
        "targets": {"speedup": ">= 5", "max_stats_diff": "== 0"},
    }
    write_result(summary, args.out)


if __name__ == "__main__":
    main()
