"""Fusion of OCR text-token features into a backbone feature map (DESIGN §4).

A token's box (0..1000 of its page's unpadded size) covers the map cells ``floor(px / stride)``
from its first to its last corner, inclusive, clamped to the map. ``scatter_text_to_grid`` sums
the features of all tokens covering each cell, with a 2-D difference array (four scatter-adds at
the box corners, then two prefix sums): O(N·C + H·W·C), independent of the boxes' areas.
"""

import torch
from torch import nn

__all__ = ["FUSION_TYPES", "TextFusion", "box_cells", "scatter_text_to_grid"]

FUSION_TYPES = ("add", "gated", "concat")


def box_cells(token_boxes, image_sizes, grid_hw, stride):
    """Inclusive cell ranges of token boxes.

    Args:
        token_boxes: (B, N, 4) x0, y0, x1, y1 in 0..1000 of each page's unpadded size.
        image_sizes: B pairs ``(h_i, w_i)``, or a (B, 2) tensor.
        grid_hw: ``(H, W)`` of the (padded) map.
        stride: pixels per map cell.

    Returns:
        (B, N, 4) long tensor ``c0, r0, c1, r1``, each clamped to the map.
    """
    height, width = grid_hw
    sizes = torch.as_tensor(image_sizes, dtype=torch.float64, device=token_boxes.device)
    scale = torch.stack([sizes[:, 1], sizes[:, 0], sizes[:, 1], sizes[:, 0]], dim=-1)[:, None]
    cells = torch.floor(token_boxes.double() / 1000 * scale / stride).long()
    limit = torch.tensor([width, height, width, height], device=cells.device) - 1
    return torch.minimum(cells.clamp(min=0), limit)


def scatter_text_to_grid(token_feats, token_boxes, token_mask, image_sizes, grid_hw, stride):
    """Sum text-token features onto the cells their boxes cover.

    Args:
        token_feats: (B, N, C) token features.
        token_boxes: (B, N, 4) boxes in 0..1000 of each page's unpadded size.
        token_mask: (B, N) bool, False for padding (contributes nothing).
        image_sizes: B pairs ``(h_i, w_i)``: each page's unpadded size in pixels.
        grid_hw: ``(H, W)`` of the padded feature map.
        stride: the map's stride in pixels.

    Returns:
        (B, C, H, W) text map in ``token_feats``' dtype.
    """
    batch, _, channels = token_feats.shape
    height, width = grid_hw
    c0, r0, c1, r1 = box_cells(token_boxes, image_sizes, grid_hw, stride).unbind(-1)
    # Difference array in channels-last layout, one trash row for padding tokens and for corners
    # past the map's edge (they only affect cells outside it).
    cells = batch * height * width
    grid = token_feats.new_zeros(cells + 1, channels)
    first = torch.arange(batch, device=grid.device)[:, None] * (height * width)
    feats = token_feats.reshape(-1, channels)
    for rows, cols, sign in ((r0, c0, 1), (r0, c1 + 1, -1), (r1 + 1, c0, -1), (r1 + 1, c1 + 1, 1)):
        inside = token_mask & (rows < height) & (cols < width)
        index = torch.where(inside, first + rows * width + cols, cells)
        grid.index_add_(0, index.view(-1), feats, alpha=sign)
    grid = grid[:cells].view(batch, height, width, channels)
    if grid.requires_grad:
        grid = grid.cumsum(1).cumsum(2)
    else:  # in place: no second copy of the map
        torch.cumsum(grid, 1, out=grid)
        torch.cumsum(grid, 2, out=grid)
    return grid.permute(0, 3, 1, 2)


class TextFusion(nn.Module):
    """Fuse the text map of a layer's text tokens into its feature map.

    - ``add``: ``map + text_map``.
    - ``gated``: ``g = sigmoid(conv3x3([map; text_map]))`` per cell and channel;
      ``g * map + (1 - g) * text_map``.
    - ``concat``: ``conv1x1([map; text_map])`` back to ``channels``; initialised to pass ``map``
      through unchanged, so fine-tuning starts from the image-only features.
    """

    def __init__(self, fusion_type: str, channels: int, stride: int):
        super().__init__()
        if fusion_type not in FUSION_TYPES:
            raise ValueError(f"fusion type '{fusion_type}' is not one of {FUSION_TYPES}")
        self.fusion_type = fusion_type
        self.stride = stride
        if fusion_type == "gated":
            self.gate = nn.Conv2d(2 * channels, channels, kernel_size=3, padding=1)
        elif fusion_type == "concat":
            self.project = nn.Conv2d(2 * channels, channels, kernel_size=1)
            with torch.no_grad():
                self.project.weight.zero_()
                self.project.weight[:, :channels, 0, 0].copy_(torch.eye(channels))
                self.project.bias.zero_()

    def forward(self, feature_map, token_feats, token_boxes, token_mask, image_sizes):
        """(B, C, H, W) map, (B, N, C) tokens, (B, N, 4) boxes, (B, N) mask → (B, C, H, W)."""
        text_map = scatter_text_to_grid(
            token_feats, token_boxes, token_mask, image_sizes, feature_map.shape[-2:], self.stride
        )
        if self.fusion_type == "add":
            return feature_map + text_map
        both = torch.cat([feature_map, text_map], dim=1)
        if self.fusion_type == "gated":
            gate = torch.sigmoid(self.gate(both))
            return gate * feature_map + (1 - gate) * text_map
        return self.project(both)
