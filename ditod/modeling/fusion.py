"""Fusion of OCR text-token features into a backbone feature map (DESIGN §4).

A token's box (0..1000 of its page's unpadded size) covers the map cells ``floor(px / stride)``
from its first to its last corner, inclusive, clamped to the map. ``scatter_text_to_grid`` sums
the features of all tokens covering each cell as one ``embedding_bag`` over the (cell, token)
pairs of the boxes, grouped by cell: a sparse product whose cost is the boxes' total area times C,
with no dense (cells × tokens) mask and no Python loop.
"""

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["FUSION_TYPES", "TextFusion", "box_cells", "scatter_text_to_grid"]

FUSION_TYPES = ("add", "gated", "concat")


def box_cells(token_boxes, image_sizes, grid_hw, stride):
    """Inclusive cell ranges of token boxes.

    Args:
        token_boxes: (B, N, 4) x0, y0, x1, y1 in 0..1000 of each page's unpadded size.
        image_sizes: (B, 2) tensor of ``(h_i, w_i)`` on the boxes' device, or B such pairs.
        grid_hw: ``(H, W)`` of the (padded) map.
        stride: pixels per map cell.

    Returns:
        (B, N, 4) long tensor ``c0, r0, c1, r1``, each clamped to the map.
    """
    height, width = grid_hw
    sizes = torch.as_tensor(image_sizes, dtype=torch.float64, device=token_boxes.device)
    scale = sizes.flip(-1).repeat(1, 2)[:, None]  # (B, 1, 4): w, h, w, h
    cells = torch.floor(token_boxes.double() / 1000 * scale / stride).long().clamp(min=0)
    cols = cells[..., 0::2].clamp(max=width - 1)
    rows = cells[..., 1::2].clamp(max=height - 1)
    return torch.stack([cols[..., 0], rows[..., 0], cols[..., 1], rows[..., 1]], dim=-1)


def scatter_text_to_grid(token_feats, token_boxes, token_mask, image_sizes, grid_hw, stride):
    """Sum text-token features onto the cells their boxes cover.

    Args:
        token_feats: (B, N, C) token features.
        token_boxes: (B, N, 4) boxes in 0..1000 of each page's unpadded size.
        token_mask: (B, N) bool, False for padding (contributes nothing).
        image_sizes: (B, 2) ``(h_i, w_i)`` of each page's unpadded size in pixels (a tensor on
            the features' device, or B pairs).
        grid_hw: ``(H, W)`` of the padded feature map.
        stride: the map's stride in pixels.

    Returns:
        (B, C, H, W) text map in ``token_feats``' dtype (a channels-last view).
    """
    batch, num_tokens, channels = token_feats.shape
    height, width = grid_hw
    device = token_feats.device
    c0, r0, c1, r1 = box_cells(token_boxes, image_sizes, grid_hw, stride).view(-1, 4).unbind(-1)
    # Every (token, covered cell) pair, grouped by cell: a sparse cell × token incidence. Its
    # size is the one number read back to the host (on CUDA, this function's only sync).
    box_width = c1 - c0 + 1
    area = (r1 - r0 + 1) * box_width * token_mask.reshape(-1)
    ends = torch.cumsum(area, 0)
    pairs = int(ends[-1]) if len(ends) else 0
    token = torch.repeat_interleave(area, output_size=pairs)
    within = torch.arange(pairs, device=device) - (ends - area)[token]
    row = token // num_tokens * height + r0[token] + within // box_width[token]
    cell = row * width + c0[token] + within % box_width[token]
    counts = torch.zeros(batch * height * width, dtype=torch.long, device=device)
    counts.index_add_(0, cell, torch.ones_like(cell))
    offsets = torch.cumsum(counts, 0) - counts
    text_map = F.embedding_bag(
        token[torch.argsort(cell, stable=True)],
        token_feats.reshape(-1, channels),
        offsets,
        mode="sum",
    )
    return text_map.view(batch, height, width, channels).permute(0, 3, 1, 2)


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
