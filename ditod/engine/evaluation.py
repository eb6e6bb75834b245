"""COCO evaluation of layout detections through faster-coco-eval."""

import contextlib
import io
import os

from detectron2.evaluation import COCOEvaluator
from pycocotools import mask as mask_util
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

__all__ = ["LayoutEvaluator", "complete_ground_truth"]


def complete_ground_truth(coco_api) -> dict:
    """Fill in place what COCO evaluation reads and a valid COCO file may leave out: ``area``
    as COCO defines it (the segmentation's pixel area where there is one, else the box's
    ``w * h``) and ``iscrowd`` 0. Without them pycocotools raises ``KeyError`` and
    faster-coco-eval reports wrong size-bucket APs (APs/APm/APl). The dataset loader logs the
    counts once per dataset; returns them (key → annotations filled)."""
    filled = {"area": 0, "iscrowd": 0}
    for ann in coco_api.dataset.get("annotations", []):
        if "area" not in ann:
            if ann.get("segmentation"):
                ann["area"] = float(mask_util.area(coco_api.annToRLE(ann)))
            else:
                ann["area"] = float(ann["bbox"][2] * ann["bbox"][3])
            filled["area"] += 1
        if "iscrowd" not in ann:
            ann["iscrowd"] = 0
            filled["iscrowd"] += 1
    return filled


class LayoutEvaluator(COCOEvaluator):
    """detectron2's ``COCOEvaluator`` (per-class AP table, ``coco_instances_results.json``,
    results for ``metrics.json``) on ground truth completed by :func:`complete_ground_truth`;
    its fast path computes with faster-coco-eval, whose stats equal pycocotools' (see
    :mod:`ditod.compat`). A model without a single detection scores AP 0 (detectron2 reports
    NaN: pycocotools cannot load an empty result list)."""

    def __init__(self, dataset_name: str, *args, **kwargs):
        super().__init__(dataset_name, *args, **kwargs)
        self._img_ids = None
        if self._do_evaluation:
            complete_ground_truth(self._coco_api)

    def _eval_predictions(self, predictions, img_ids=None):
        self._img_ids = img_ids
        super()._eval_predictions(predictions, img_ids=img_ids)

    def _derive_coco_results(self, coco_eval, iou_type, class_names=None):
        if coco_eval is None:
            self._logger.warning("no detections on any page: every AP is 0")
            coco_eval = self._evaluate_without_detections(iou_type)
        return super()._derive_coco_results(coco_eval, iou_type, class_names)

    def _evaluate_without_detections(self, iou_type: str) -> COCOeval:
        empty = COCO()
        dataset = self._coco_api.dataset
        empty.dataset = {
            "images": dataset["images"],
            "categories": dataset["categories"],
            "annotations": [],
        }
        coco_eval = COCOeval(self._coco_api, empty, iou_type)
        if self._img_ids is not None:
            coco_eval.params.imgIds = self._img_ids
        with contextlib.redirect_stdout(io.StringIO()):
            empty.createIndex()
            coco_eval.evaluate()
            coco_eval.accumulate()
            coco_eval.summarize()
        return coco_eval

    @classmethod
    def from_config(cls, cfg, dataset_name: str, output_folder=None) -> "LayoutEvaluator":
        tasks = ("bbox", "segm") if cfg.MODEL.MASK_ON else ("bbox",)
        output_folder = output_folder or os.path.join(cfg.OUTPUT_DIR, "inference", dataset_name)
        return cls(
            dataset_name,
            tasks=tasks,
            distributed=True,
            output_dir=output_folder,
            max_dets_per_image=cfg.TEST.DETECTIONS_PER_IMAGE,
        )
