"""Import path kept for existing code: the fusion lives in :mod:`ditod.modeling.fusion`."""

from .modeling.fusion import FUSION_TYPES, TextFusion, box_cells, scatter_text_to_grid

__all__ = ["FUSION_TYPES", "TextFusion", "box_cells", "scatter_text_to_grid"]
