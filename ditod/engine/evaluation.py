"""COCO evaluation of layout detections through faster-coco-eval."""

import os

from detectron2.evaluation import COCOEvaluator

__all__ = ["LayoutEvaluator"]


class LayoutEvaluator(COCOEvaluator):
    """detectron2's ``COCOEvaluator`` (per-class AP table, ``coco_instances_results.json``,
    results for ``metrics.json``); its fast path computes with faster-coco-eval, whose stats equal
    pycocotools' (see :mod:`ditod.compat`)."""

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
