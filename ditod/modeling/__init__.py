"""The detector: the LayoutLMv3 pyramid + FPN backbone with text fusion, and the VL R-CNN
meta-architecture, both registered with detectron2 by importing this package."""

from .backbone import (
    LAYOUTLMV3_SIZES,
    LayoutLMv3Backbone,
    PageBatch,
    build_layoutlmv3_config,
    build_layoutlmv3_fpn_backbone,
)
from .fusion import FUSIONS, TextFusion, build_text_fusion, register_fusion, scatter_text_to_grid
from .rcnn import VLGeneralizedRCNN
from .roi_heads import LayoutCascadeROIHeads

__all__ = [
    "FUSIONS",
    "LAYOUTLMV3_SIZES",
    "LayoutCascadeROIHeads",
    "LayoutLMv3Backbone",
    "PageBatch",
    "TextFusion",
    "VLGeneralizedRCNN",
    "build_layoutlmv3_config",
    "build_layoutlmv3_fpn_backbone",
    "build_text_fusion",
    "register_fusion",
    "scatter_text_to_grid",
]
