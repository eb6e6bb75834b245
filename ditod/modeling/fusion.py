"""Fusion of OCR text-token features into a backbone feature map.

A token's box (0..1000 of its page's unpadded size) covers the map cells ``floor(px / stride)``
from its first to its last corner, inclusive, clamped to the map. ``scatter_text_to_grid`` sums
the features of all tokens covering each cell as one ``embedding_bag`` over the (cell, token)
pairs of the boxes, grouped by cell: a sparse product whose cost is the boxes' total area times C,
with no dense (cells × tokens) mask and no Python loop.
"""

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "FUSIONS",
    "FUSION_REDUCTIONS",
    "TextFusion",
    "box_cells",
    "build_text_fusion",
    "dense_text_grid",
    "pool_segments",
    "register_fusion",
    "scatter_text_to_grid",
]

# How a cell combines the tokens covering it. "sum" grows with the text a cell holds: at stride
# 32 a cell holds 5–6 text lines, ~20 tokens, and the text map outweighs the image map ~20×.
FUSION_REDUCTIONS = ("sum", "mean")


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


def scatter_text_to_grid(
    token_feats, token_boxes, token_mask, image_sizes, grid_hw, stride, reduce: str = "sum"
):
    """Sum (or average: ``reduce="mean"``) text-token features onto the cells their boxes cover.

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
    if reduce not in FUSION_REDUCTIONS:
        raise ValueError(f"reduce '{reduce}' is not one of {FUSION_REDUCTIONS}")
    if torch.jit.is_tracing():
        return dense_text_grid(
            token_feats, token_boxes, token_mask, image_sizes, grid_hw, stride, reduce
        )
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
        mode=reduce,
    )
    return text_map.view(batch, height, width, channels).permute(0, 3, 1, 2)


def dense_text_grid(
    token_feats, token_boxes, token_mask, image_sizes, grid_hw, stride, reduce: str = "sum"
):
    """:func:`scatter_text_to_grid` as one batched product with each token's (H × W) coverage:
    no data-dependent sizes, so it traces and exports; memory B × N × H × W (a stride-32 map)."""
    batch, num_tokens, channels = token_feats.shape
    height, width = grid_hw
    device = token_feats.device
    c0, r0, c1, r1 = box_cells(token_boxes, image_sizes, grid_hw, stride).unbind(-1)
    rows = torch.arange(height, device=device)
    cols = torch.arange(width, device=device)
    in_rows = (rows >= r0[..., None]) & (rows <= r1[..., None]) & token_mask[..., None]
    in_cols = (cols >= c0[..., None]) & (cols <= c1[..., None])
    coverage = (in_rows[..., :, None] & in_cols[..., None, :]).to(token_feats.dtype)
    coverage = coverage.reshape(batch, num_tokens, -1)
    if reduce == "mean":
        coverage = coverage / coverage.sum(1, keepdim=True).clamp(min=1)
    text_map = torch.bmm(token_feats.transpose(1, 2), coverage)
    return text_map.view(batch, channels, height, width)


def pool_segments(token_feats, token_boxes, token_mask):
    """One feature per OCR segment (SE): the mean of its tokens' features, in place of them.

    A segment is a run of consecutive real tokens with the same box (the tokenizer gives every
    token of a segment the segment's box). Shapes stay those of the tokens, so the result goes
    to :func:`scatter_text_to_grid` as tokens do, and traces.

    Args:
        token_feats: (B, N, C); token_boxes: (B, N, 4); token_mask: (B, N) bool.

    Returns:
        ``(segment_feats (B, N, C), segment_mask (B, N))``: each token holds its segment's mean;
        the mask keeps only each segment's first token, so a segment counts once.
    """
    previous_box = torch.cat([token_boxes[:, :1], token_boxes[:, :-1]], dim=1)
    previous_mask = torch.cat([torch.zeros_like(token_mask[:, :1]), token_mask[:, :-1]], dim=1)
    starts = token_mask & (~previous_mask | (token_boxes != previous_box).any(-1))
    segment = torch.cumsum(starts.long(), dim=1)  # (B, N)
    # (B, N, N) token i × token j of the same segment: a product, not a scatter-add (ONNX's
    # ScatterND drops repeated indices), O(N² C) for N ≤ 512 tokens
    same = (segment[:, :, None] == segment[:, None, :]) & token_mask[:, None, :]
    weights = same.to(token_feats.dtype)
    text = torch.where(token_mask[..., None], token_feats, 0)
    means = torch.bmm(weights, text) / weights.sum(-1, keepdim=True).clamp(min=1)
    return means, starts


FUSIONS: dict[str, type] = {}


def register_fusion(name: str):
    """Class decorator: make a :class:`TextFusion` subclass the ``MODEL.LAYOUTLMV3.FUSION.TYPE``
    ``name`` (a new kind of fusion is one class in the user's code, imported before the model is
    built)."""

    def register(cls):
        if FUSIONS.get(name, cls) is not cls:
            raise ValueError(f"a fusion type '{name}' is already registered")
        cls.fusion_type = name
        FUSIONS[name] = cls
        return cls

    return register


def build_text_fusion(fusion_type: str, channels: int, gate_bias: float = 0.0) -> "TextFusion":
    """The registered fusion ``fusion_type`` for maps of ``channels`` channels."""
    if fusion_type not in FUSIONS:
        raise ValueError(f"fusion type '{fusion_type}' is not one of {sorted(FUSIONS)}")
    return FUSIONS[fusion_type](channels, gate_bias=gate_bias)


class TextFusion(nn.Module):
    """Fuses a text map (:func:`scatter_text_to_grid`) into a feature map of the same shape;
    subclasses are registered by name (:func:`register_fusion`).

    Args:
        channels: C of the maps.
        gate_bias: for gated fusions, the gate's initial bias.
    """

    fusion_type = ""

    def __init__(self, channels: int, gate_bias: float = 0.0):
        super().__init__()

    def forward(self, feature_map, text_map):
        """(B, C, H, W) map and (B, C, H, W) text map → (B, C, H, W)."""
        raise NotImplementedError


@register_fusion("add")
class AddFusion(TextFusion):
    """``map + text_map``."""

    def forward(self, feature_map, text_map):
        return feature_map + text_map


@register_fusion("gated")
class GatedFusion(TextFusion):
    """``g = sigmoid(conv3x3([map; text_map]))`` per cell and channel; ``g * map + (1 - g) *
    text_map``: text *replaces* part of the image. ``gate_bias`` is the conv's initial bias: 0
    starts at g ≈ 0.5 (half the image everywhere), 2 at g ≈ 0.88 (mostly the image)."""

    def __init__(self, channels: int, gate_bias: float = 0.0):
        super().__init__(channels)
        self.gate = nn.Conv2d(2 * channels, channels, kernel_size=3, padding=1)
        if gate_bias:
            with torch.no_grad():
                self.gate.bias.fill_(gate_bias)

    def forward(self, feature_map, text_map):
        gate = torch.sigmoid(self.gate(torch.cat([feature_map, text_map], dim=1)))
        return gate * feature_map + (1 - gate) * text_map


@register_fusion("gated_add")
class GatedAddFusion(GatedFusion):
    """The same gate on the text only, ``map + g * text_map``: the image passes whole and the
    gate decides, per cell and channel, how much text to add (``gate_bias`` 0: g ≈ 0.5)."""

    def forward(self, feature_map, text_map):
        gate = torch.sigmoid(self.gate(torch.cat([feature_map, text_map], dim=1)))
        return feature_map + gate * text_map


@register_fusion("concat")
class ConcatFusion(TextFusion):
    """``conv1x1([map; text_map])`` back to C channels; initialised to pass ``map`` through
    unchanged, so fine-tuning starts from the image-only features."""

    def __init__(self, channels: int, gate_bias: float = 0.0):
        super().__init__(channels)
        self.project = nn.Conv2d(2 * channels, channels, kernel_size=1)
        with torch.no_grad():
            self.project.weight.zero_()
            self.project.weight[:, :channels, 0, 0].copy_(torch.eye(channels))
            self.project.bias.zero_()

    def forward(self, feature_map, text_map):
        return self.project(torch.cat([feature_map, text_map], dim=1))
