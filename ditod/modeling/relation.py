"""Relation module (RM): self-attention over the boxes of a page refines each box's class
scores and coordinates from its RoI features and its place among the others."""

import torch
import torch.nn.functional as F
from detectron2.structures import Boxes
from torch import nn

__all__ = ["BoxRelation", "box_geometry"]


def box_geometry(boxes: Boxes, image_size) -> torch.Tensor:
    """(R, 6) ``x0/W, y0/H, x1/W, y1/H, log(w/W), log(h/H)`` of boxes on an (H, W) page."""
    height, width = image_size
    x0, y0, x1, y1 = boxes.tensor.unbind(-1)
    w = (x1 - x0).clamp(min=1.0) / width
    h = (y1 - y0).clamp(min=1.0) / height
    return torch.stack([x0 / width, y0 / height, x1 / width, y1 / height, w.log(), h.log()], -1)


class RelationLayer(nn.Module):
    """A pre-norm transformer encoder layer (``nn.TransformerEncoderLayer(norm_first=True)``
    without dropout), written out so that it traces to ONNX (PyTorch's inference fast path
    does not export)."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.ReLU(), nn.Linear(4 * dim, dim))

    def forward(self, x: torch.Tensor, attend: torch.Tensor | None = None) -> torch.Tensor:
        """(B, S, D) boxes, ``attend`` (B, 1, 1, S) bool (False: padding) → (B, S, D)."""
        batch, length, dim = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(batch, length, 3, self.heads, -1).unbind(2)
        attended = F.scaled_dot_product_attention(
            q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), attn_mask=attend
        )
        x = x + self.proj(attended.transpose(1, 2).reshape(batch, length, dim))
        return x + self.mlp(self.norm2(x))


class BoxRelation(nn.Module):
    """Boxes of a page attend to each other; out come refinements of the box predictor's class
    logits and box deltas, added to them. The output layers start at zero, so a detector with
    the module starts as the one without.

    Args:
        in_channels: width of the box head's features.
        num_classes: K (logits K + 1 with background).
        box_dim: 4 (class-agnostic deltas, as Cascade R-CNN) or 4 K.
        dim, heads, layers: the transformer encoder's width, heads and depth.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        box_dim: int = 4,
        dim: int = 256,
        heads: int = 8,
        layers: int = 2,
    ):
        super().__init__()
        self.features = nn.Linear(in_channels, dim)
        self.geometry = nn.Sequential(nn.Linear(6, dim), nn.ReLU(), nn.Linear(dim, dim))
        self.layers = nn.ModuleList(RelationLayer(dim, heads) for _ in range(layers))
        self.norm = nn.LayerNorm(dim)
        self.scores = nn.Linear(dim, num_classes + 1)
        self.deltas = nn.Linear(dim, box_dim)
        for output in (self.scores, self.deltas):
            nn.init.zeros_(output.weight)
            nn.init.zeros_(output.bias)

    def forward(self, box_features: torch.Tensor, boxes: list[Boxes], image_sizes):
        """(R, C) features of the boxes of all pages (page after page, ``boxes[i]`` the i-th
        page's) → ``(score_logits (R, K + 1), deltas (R, box_dim))`` refinements."""
        tokens = self.features(box_features) + self.geometry(
            torch.cat([box_geometry(b, s) for b, s in zip(boxes, image_sizes)])
        )
        counts = [len(b) for b in boxes]
        if len(counts) == 1:  # one page (and the path an exported model traces): no padding
            pages, attend, real = tokens[None], None, None
        else:
            pages = nn.utils.rnn.pad_sequence(tokens.split(counts), batch_first=True)
            positions = torch.arange(pages.shape[1], device=tokens.device)
            real = positions[None] < torch.tensor(counts, device=tokens.device)[:, None]
            attend = real[:, None, None, :]
        for layer in self.layers:
            pages = layer(pages, attend)
        encoded = self.norm(pages[0] if real is None else pages[real])
        return self.scores(encoded), self.deltas(encoded)
