"""Cascade R-CNN heads for layouts: box features that also carry the page's text
(``MODEL.LAYOUTLMV3.FUSION.BOX_HEAD``) and a relation module over the boxes of a page
(``MODEL.RELATION``)."""

import torch
from detectron2.config import configurable
from detectron2.modeling import ROI_HEADS_REGISTRY
from detectron2.modeling.poolers import ROIPooler
from detectron2.modeling.roi_heads import CascadeROIHeads
from detectron2.modeling.roi_heads.cascade_rcnn import _ScaleGradient
from torch import nn

from layoutlmv3.modeling import PYRAMID_STRIDES

from .backbone import build_layoutlmv3_config
from .relation import BoxRelation

__all__ = ["TEXT_MAP", "LayoutCascadeROIHeads", "TextBoxPooler"]

# Key of the text map among the features the meta-architecture hands to the ROI heads.
TEXT_MAP = "text_map"


class TextBoxPooler(nn.Module):
    """The image features' box pooler, plus the text map pooled over the same boxes with the
    same RoIAlign, projected to the image features' channels and added. The projection starts
    at zero, so training starts from the image-only box head.

    ``forward(features, boxes)``: ``features`` the image levels followed by the text map
    (B, D, H, W); returns (R, C, P, P) as the image pooler does.
    """

    def __init__(
        self, image_pooler: ROIPooler, text_pooler: ROIPooler, text_channels: int, channels: int
    ):
        super().__init__()
        self.image_pooler = image_pooler
        self.text_pooler = text_pooler
        self.project = nn.Conv2d(text_channels, channels, kernel_size=1)
        nn.init.zeros_(self.project.weight)
        nn.init.zeros_(self.project.bias)

    def forward(self, features: list[torch.Tensor], boxes) -> torch.Tensor:
        pooled = self.image_pooler(features[:-1], boxes)
        return pooled + self.project(self.text_pooler(features[-1:], boxes))


@ROI_HEADS_REGISTRY.register()
class LayoutCascadeROIHeads(CascadeROIHeads):
    """``CascadeROIHeads`` with two options, each off by default (then it is exactly
    ``CascadeROIHeads``, checkpoints included):

    - ``MODEL.LAYOUTLMV3.FUSION.BOX_HEAD``: every stage pools the text map too
      (:class:`TextBoxPooler`);
    - ``MODEL.RELATION.LAYERS`` > 0: the last stage's predictions are refined by a
      :class:`~ditod.modeling.relation.BoxRelation` over the boxes of each page, trained with
      that stage's losses.
    """

    @configurable
    def __init__(self, *, relation: BoxRelation | None = None, **kwargs):
        super().__init__(**kwargs)
        self.relation = relation

    @classmethod
    def from_config(cls, cfg, input_shape):
        ret = super().from_config(cfg, input_shape)
        node = cfg.MODEL.RELATION
        if node.LAYERS > 0:
            predictor = ret["box_predictors"][-1]
            ret["relation"] = BoxRelation(
                ret["box_heads"][-1].output_shape.channels,
                cfg.MODEL.ROI_HEADS.NUM_CLASSES,
                predictor.bbox_pred.out_features,
                node.DIM,
                node.HEADS,
                node.LAYERS,
            )
        return ret

    @classmethod
    def _init_box_head(cls, cfg, input_shape):
        ret = super()._init_box_head(cfg, input_shape)
        fusion = cfg.MODEL.LAYOUTLMV3.FUSION
        if not fusion.BOX_HEAD:
            return ret
        strides = dict(zip(cfg.MODEL.LAYOUTLMV3.OUT_FEATURES, PYRAMID_STRIDES))
        if not fusion.LAYERS or fusion.LAYERS[0] not in strides:
            raise ValueError(
                "MODEL.LAYOUTLMV3.FUSION.BOX_HEAD takes the text map of the first of "
                f"FUSION.LAYERS {list(fusion.LAYERS)}: it must be one of OUT_FEATURES "
                f"{list(strides)}"
            )
        head = cfg.MODEL.ROI_BOX_HEAD
        text_pooler = ROIPooler(
            output_size=head.POOLER_RESOLUTION,
            scales=(1.0 / strides[fusion.LAYERS[0]],),
            sampling_ratio=head.POOLER_SAMPLING_RATIO,
            pooler_type=head.POOLER_TYPE,
        )
        channels = input_shape[ret["box_in_features"][0]].channels
        text_channels = build_layoutlmv3_config(cfg).hidden_size
        ret["box_pooler"] = TextBoxPooler(ret["box_pooler"], text_pooler, text_channels, channels)
        ret["box_in_features"] = [*ret["box_in_features"], TEXT_MAP]
        return ret

    def _run_stage(self, features, proposals, stage):
        """A stage's predictions; the last stage's refined by the relation module."""
        if self.relation is None or stage < self.num_cascade_stages - 1:
            return super()._run_stage(features, proposals, stage)
        boxes = [x.proposal_boxes for x in proposals]
        box_features = self.box_pooler(features, boxes)
        box_features = _ScaleGradient.apply(box_features, 1.0 / self.num_cascade_stages)
        box_features = self.box_head[stage](box_features)
        scores, deltas = self.box_predictor[stage](box_features)
        more_scores, more_deltas = self.relation(
            box_features, boxes, [x.image_size for x in proposals]
        )
        return scores + more_scores, deltas + more_deltas
