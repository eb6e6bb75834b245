"""LayoutLMv3 as a detectron2 backbone: the transformer's 4-level pyramid, optional text fusion,
then detectron2's FPN (p2..p6)."""

from dataclasses import dataclass

import torch
from detectron2.layers import ShapeSpec
from detectron2.modeling import BACKBONE_REGISTRY, FPN, Backbone
from detectron2.modeling.backbone.fpn import LastLevelMaxPool
from transformers import LayoutLMv3Config

from layoutlmv3 import LayoutLMv3DetectionModel
from layoutlmv3.loading import read_config
from layoutlmv3.modeling import PYRAMID_STRIDES

from .fusion import (
    FUSION_REDUCTIONS,
    FUSIONS,
    build_text_fusion,
    pool_segments,
    scatter_text_to_grid,
)

__all__ = [
    "LAYOUTLMV3_SIZES",
    "LayoutLMv3Backbone",
    "PageBatch",
    "build_layoutlmv3_config",
    "build_layoutlmv3_fpn_backbone",
]

LAYOUTLMV3_SIZES = {
    # coordinate_size × 4 + shape_size × 2 = hidden_size (the 2-D position embedding widths).
    "base": dict(
        hidden_size=768,
        num_hidden_layers=12,
        num_attention_heads=12,
        intermediate_size=3072,
        vocab_size=50265,
        coordinate_size=128,
        shape_size=128,
    ),
    "base-chinese": dict(
        hidden_size=768,
        num_hidden_layers=12,
        num_attention_heads=12,
        intermediate_size=3072,
        vocab_size=250002,
        coordinate_size=128,
        shape_size=128,
    ),
    "large": dict(
        hidden_size=1024,
        num_hidden_layers=24,
        num_attention_heads=16,
        intermediate_size=4096,
        vocab_size=50265,
        coordinate_size=171,
        shape_size=170,
    ),
    # Tests and the demo, trained from scratch in minutes: no dropout (on CPU, attention dropout
    # also forces SDPA's unfused path, a third of a training step).
    "tiny": dict(
        hidden_size=96,
        num_hidden_layers=4,
        num_attention_heads=3,
        intermediate_size=192,
        vocab_size=50265,
        coordinate_size=16,
        shape_size=16,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    ),
}


@dataclass
class PageBatch:
    """A padded batch of pages for the backbone.

    Attributes:
        pixel_values: (B, 3, H, W) normalised, padded images.
        image_sizes: (B, 2) tensor on the images' device (or B pairs) of ``(h_i, w_i)``, each
            page's unpadded size.
        input_ids: (B, L) text token ids, padded with the pad id; None for no text.
        bbox: (B, L, 4) token boxes in 0..1000 of each page's unpadded size.
        attention_mask: (B, L) 1 for real tokens, 0 for padding.
        text_map: set by the backbone for the box head (``FUSION.BOX_HEAD``): (B, D, H, W).
    """

    pixel_values: torch.Tensor
    image_sizes: torch.Tensor | list[tuple[int, int]]
    input_ids: torch.Tensor | None = None
    bbox: torch.Tensor | None = None
    attention_mask: torch.Tensor | None = None
    text_map: torch.Tensor | None = None


def build_layoutlmv3_config(cfg) -> LayoutLMv3Config:
    """``LayoutLMv3Config`` from ``MODEL.LAYOUTLMV3.CONFIG`` (a config.json or a folder holding
    one) or else the ``SIZE`` preset; attention-bias switches and ``ATTENTION_DROPOUT`` (when
    >= 0) from the YAML."""
    node = cfg.MODEL.LAYOUTLMV3
    if node.CONFIG:
        try:
            config = read_config(node.CONFIG)
        except FileNotFoundError as error:
            raise FileNotFoundError(f"MODEL.LAYOUTLMV3.CONFIG: {error}") from None
    elif node.SIZE in LAYOUTLMV3_SIZES:
        config = LayoutLMv3Config(**LAYOUTLMV3_SIZES[node.SIZE])
    else:
        raise ValueError(
            f"MODEL.LAYOUTLMV3.SIZE '{node.SIZE}' is not one of {sorted(LAYOUTLMV3_SIZES)}; "
            "or set MODEL.LAYOUTLMV3.CONFIG to a config.json"
        )
    if node.ATTENTION_DROPOUT >= 0:
        config.attention_probs_dropout_prob = node.ATTENTION_DROPOUT
    config.has_relative_attention_bias = node.RELATIVE_ATTENTION_BIAS
    config.has_spatial_attention_bias = node.SPATIAL_ATTENTION_BIAS
    config.visual_embed = True
    config.text_embed = not node.IMAGE_ONLY
    return config


class LayoutLMv3Backbone(Backbone):
    """LayoutLMv3 feature pyramid (strides 4/8/16/32) with text fused into chosen levels.

    Args:
        model: a ``LayoutLMv3DetectionModel`` in detection mode.
        fusion_type: "" (no fusion into the maps) or a registered fusion: "add", "gated",
            "gated_add", "concat" (see :mod:`.fusion`) or one of the user's.
        fusion_layers: names among the model's ``out_features`` whose text is used.
        fusion_reduce: "sum" or "mean" of the tokens covering a cell.
        fusion_segments: one feature per OCR segment (its tokens' mean; "SE") instead of one
            per token.
        box_head_text: also hand the first fusion layer's text map to the box head (it is
            left on the :class:`PageBatch` as ``text_map``).
        gate_bias: initial bias of the gated fusions' gate.
    """

    def __init__(
        self,
        model: LayoutLMv3DetectionModel,
        fusion_type: str = "",
        fusion_layers=(),
        fusion_reduce: str = "sum",
        fusion_segments: bool = False,
        box_head_text: bool = False,
        gate_bias: float = 0.0,
    ):
        super().__init__()
        if not model.detection:
            raise ValueError(
                "LayoutLMv3Backbone needs a LayoutLMv3DetectionModel with detection=True"
            )
        self.backbone = model
        config = model.config
        self._out_features = list(model.out_features)
        self._out_feature_strides = dict(zip(model.out_features, PYRAMID_STRIDES))
        self._out_feature_channels = {name: config.hidden_size for name in model.out_features}
        special = [config.bos_token_id, config.eos_token_id, config.pad_token_id]
        self.register_buffer("special_token_ids", torch.tensor(special), persistent=False)
        if fusion_type and fusion_type not in FUSIONS:
            raise ValueError(
                f"MODEL.LAYOUTLMV3.FUSION.TYPE '{fusion_type}' is not one of "
                f"{sorted(FUSIONS)} (or empty for no fusion)"
            )
        if fusion_reduce not in FUSION_REDUCTIONS:
            raise ValueError(
                f"MODEL.LAYOUTLMV3.FUSION.REDUCE '{fusion_reduce}' is not one of "
                f"{FUSION_REDUCTIONS}"
            )
        uses = f"text fusion '{fusion_type}'" if fusion_type else "FUSION.BOX_HEAD"
        if (fusion_type or box_head_text) and not config.text_embed:
            raise ValueError(f"{uses} needs text: set MODEL.LAYOUTLMV3.IMAGE_ONLY False")
        if (fusion_type or box_head_text) and not fusion_layers:
            raise ValueError(f"{uses} needs a layer: MODEL.LAYOUTLMV3.FUSION.LAYERS is empty")
        for name in fusion_layers:
            if name not in self._out_feature_strides:
                raise ValueError(
                    f"MODEL.LAYOUTLMV3.FUSION.LAYERS: '{name}' is not one of the backbone's "
                    f"out features {self._out_features}"
                )
        self.fusions = torch.nn.ModuleDict(
            {
                name: build_text_fusion(fusion_type, config.hidden_size, gate_bias)
                for name in fusion_layers
            }
            if fusion_type
            else {}
        )
        self.fusion_reduce = fusion_reduce
        self.fusion_segments = fusion_segments
        self.box_head_text_layer = fusion_layers[0] if box_head_text else ""

    @property
    def size_divisibility(self) -> int:
        return max(PYRAMID_STRIDES)

    @property
    def box_head_text_shape(self) -> ShapeSpec | None:
        """Channels and stride of the text map handed to the box head (None: none is)."""
        if not self.box_head_text_layer:
            return None
        name = self.box_head_text_layer
        return ShapeSpec(
            channels=self._out_feature_channels[name], stride=self._out_feature_strides[name]
        )

    def text_map(self, name: str, text_states, batch: PageBatch, token_mask, grid_hw):
        """(B, D, H, W) text map of layer ``name`` (its map's ``grid_hw``): its text tokens' (or
        segments') states on the cells their boxes cover."""
        if self.fusion_segments:
            text_states, token_mask = pool_segments(text_states, batch.bbox, token_mask)
        return scatter_text_to_grid(
            text_states,
            batch.bbox,
            token_mask,
            batch.image_sizes,
            grid_hw,
            self._out_feature_strides[name],
            self.fusion_reduce,
        )

    def forward(self, x: torch.Tensor | PageBatch) -> dict[str, torch.Tensor]:
        """Images (B, 3, H, W) or a :class:`PageBatch` → ``{name: (B, D, H/s, W/s)}``."""
        batch = x if isinstance(x, PageBatch) else PageBatch(x, [tuple(x.shape[-2:])] * len(x))
        has_text = (
            batch.input_ids is not None
            and batch.input_ids.shape[1] > 0
            and self.backbone.config.text_embed
        )
        output = self.backbone(
            input_ids=batch.input_ids if has_text else None,
            bbox=batch.bbox if has_text else None,
            attention_mask=batch.attention_mask if has_text else None,
            pixel_values=batch.pixel_values,
        )
        features = dict(output.feature_maps)
        if not has_text:
            return features
        special = (batch.input_ids[..., None] == self.special_token_ids).any(-1)  # isin
        token_mask = batch.attention_mask.bool() & ~special
        names = list(self.fusions)
        if self.box_head_text_layer and self.box_head_text_layer not in names:
            names.append(self.box_head_text_layer)
        for name in names:
            text_map = self.text_map(
                name, output.text_hidden_states[name], batch, token_mask, features[name].shape[-2:]
            )
            if name in self.fusions:
                features[name] = self.fusions[name](features[name], text_map)
            if name == self.box_head_text_layer:
                batch.text_map = text_map
        return features

    def output_shape(self) -> dict[str, ShapeSpec]:
        return {
            name: ShapeSpec(
                channels=self._out_feature_channels[name],
                stride=self._out_feature_strides[name],
            )
            for name in self._out_features
        }


def build_layoutlmv3_backbone(cfg) -> LayoutLMv3Backbone:
    node = cfg.MODEL.LAYOUTLMV3
    model = LayoutLMv3DetectionModel(
        build_layoutlmv3_config(cfg),
        detection=True,
        out_features=node.OUT_FEATURES,
        drop_path_rate=node.DROP_PATH,
        gradient_checkpointing=node.GRADIENT_CHECKPOINTING,
    )
    fusion = node.FUSION
    return LayoutLMv3Backbone(
        model,
        fusion.TYPE,
        fusion.LAYERS,
        fusion.REDUCE,
        fusion.SEGMENTS,
        fusion.BOX_HEAD,
        fusion.GATE_BIAS,
    )


@BACKBONE_REGISTRY.register()
def build_layoutlmv3_fpn_backbone(cfg, input_shape: ShapeSpec) -> FPN:
    """LayoutLMv3 pyramid + detectron2 FPN with a max-pooled top level: p2..p6."""
    return FPN(
        bottom_up=build_layoutlmv3_backbone(cfg),
        in_features=cfg.MODEL.FPN.IN_FEATURES,
        out_channels=cfg.MODEL.FPN.OUT_CHANNELS,
        norm=cfg.MODEL.FPN.NORM,
        top_block=LastLevelMaxPool(),
        fuse_type=cfg.MODEL.FPN.FUSE_TYPE,
    )
