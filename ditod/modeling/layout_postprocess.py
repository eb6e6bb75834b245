"""Layout post-processing of a page's detections (``TEST.LAYOUT``): per-class score thresholds
and suppression across classes, applied by the model at inference, so evaluation and
``tools/infer.py`` see the same boxes.

Detectron2's NMS runs per class: a paragraph also detected as a list item, or a text block
inside a table, survives twice. Here, in this order:

1. ``SCORE_THRESHOLDS``: one threshold per class (model order) on top of
   ``MODEL.ROI_HEADS.SCORE_THRESH_TEST``.
2. ``CONTAINED``: a box covered by at least this fraction of its area by a larger box of
   another class is dropped (the larger region wins: a text block inside a table or figure).
3. ``CROSS_CLASS_IOU``: of two boxes of different classes overlapping by more than this IoU,
   the lower-scoring one is dropped.

0 (and an empty list) switch a step off.
"""

import torch
from detectron2.structures import Instances, pairwise_iou
from detectron2.structures.boxes import pairwise_intersection

__all__ = ["LayoutPostprocess"]


class LayoutPostprocess:
    """The ``TEST.LAYOUT`` steps for one model.

    Args:
        num_classes: the model's classes.
        score_thresholds: per class, model order; empty for none.
        contained: area fraction above which a box inside a larger one of another class goes.
        cross_class_iou: IoU above which the lower-scoring of two classes' boxes goes.
        base_threshold: ``MODEL.ROI_HEADS.SCORE_THRESH_TEST`` (boxes below it never arrive).
    """

    def __init__(
        self,
        num_classes: int,
        score_thresholds=(),
        contained: float = 0.0,
        cross_class_iou: float = 0.0,
        base_threshold: float = 0.0,
    ):
        thresholds = list(score_thresholds)
        if thresholds and len(thresholds) != num_classes:
            raise ValueError(
                f"TEST.LAYOUT.SCORE_THRESHOLDS has {len(thresholds)} values for "
                f"{num_classes} classes (MODEL.ROI_HEADS.NUM_CLASSES): give one per class, in "
                "the model's class order, or none"
            )
        if thresholds and min(thresholds) < base_threshold:
            raise ValueError(
                f"TEST.LAYOUT.SCORE_THRESHOLDS {thresholds} go below "
                f"MODEL.ROI_HEADS.SCORE_THRESH_TEST {base_threshold}, which drops boxes first: "
                f"lower SCORE_THRESH_TEST to {min(thresholds)}"
            )
        for key, value in (("CONTAINED", contained), ("CROSS_CLASS_IOU", cross_class_iou)):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"TEST.LAYOUT.{key} must be in 0..1 (0: off), got {value}")
        self.thresholds = torch.tensor(thresholds) if thresholds else None
        self.contained = contained
        self.cross_class_iou = cross_class_iou

    @classmethod
    def from_config(cls, cfg) -> "LayoutPostprocess":
        node = cfg.TEST.LAYOUT
        return cls(
            cfg.MODEL.ROI_HEADS.NUM_CLASSES,
            node.SCORE_THRESHOLDS,
            node.CONTAINED,
            node.CROSS_CLASS_IOU,
            cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST,
        )

    @property
    def active(self) -> bool:
        return self.thresholds is not None or self.contained > 0 or self.cross_class_iou > 0

    def __call__(self, instances: Instances) -> Instances:
        """One page's ``Instances`` (``pred_boxes``, ``scores``, ``pred_classes``) → those kept,
        in their original order."""
        keep = torch.ones(len(instances), dtype=torch.bool, device=instances.scores.device)
        if self.thresholds is not None:
            thresholds = self.thresholds.to(instances.scores.device)
            keep &= instances.scores >= thresholds[instances.pred_classes]
        if len(instances) > 1 and (self.contained > 0 or self.cross_class_iou > 0):
            keep &= self._across_classes(instances, keep)
        return instances[keep]

    def _across_classes(self, instances: Instances, keep: torch.Tensor) -> torch.Tensor:
        boxes, scores, classes = instances.pred_boxes, instances.scores, instances.pred_classes
        other_class = classes[:, None] != classes[None, :]
        keep = keep.clone()
        if self.contained > 0:
            areas = boxes.area()
            covered = pairwise_intersection(boxes, boxes) / areas[None, :].clamp(min=1e-6)
            # covered[i, j]: the fraction of box j inside box i
            for i in torch.argsort(areas, descending=True).tolist():
                if keep[i]:
                    inside = (covered[i] >= self.contained) & other_class[i] & (areas < areas[i])
                    keep &= ~inside
        if self.cross_class_iou > 0:
            iou = pairwise_iou(boxes, boxes)
            for i in torch.argsort(scores, descending=True).tolist():
                if keep[i]:
                    beaten = (iou[i] > self.cross_class_iou) & other_class[i] & (scores < scores[i])
                    keep &= ~beaten
        return keep
