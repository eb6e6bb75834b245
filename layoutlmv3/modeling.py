"""LayoutLMv3 for document layout detection.

Built on transformers' ``LayoutLMv3PreTrainedModel``: ``from_pretrained`` / ``save_pretrained``,
weight initialisation and activation (gradient) checkpointing are transformers' own, and the
parameter names equal ``transformers.LayoutLMv3Model``'s, so hub checkpoints load as they are.
Unlike transformers' model it takes pages of any size divisible by the patch size
(the 14×14 ``pos_embed`` is resized bicubically), attends through
``torch.nn.functional.scaled_dot_product_attention`` with text padding masked and the relative
(1-D) and spatial (2-D) biases as trainable additive masks, and has gradient checkpointing and
stochastic depth. With ``detection=True`` it returns a 4-level feature pyramid (strides 4/8/16/32)
from the patch tokens of ``out_features`` layers, plus the text tokens' hidden states there.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from timm.layers import DropPath
from torch import nn
from transformers import LayoutLMv3Config
from transformers.activations import ACT2FN
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import BaseModelOutput
from transformers.models.layoutlmv3.modeling_layoutlmv3 import LayoutLMv3PreTrainedModel
from transformers.utils import ModelOutput

from .blocked_attention import blocked_attention

__all__ = [
    "LayoutLMv3DetectionModel",
    "LayoutLMv3DetectionOutput",
    "relative_position_bucket",
]

DEFAULT_OUT_FEATURES = ("layer3", "layer5", "layer7", "layer11")
PYRAMID_STRIDES = (4, 8, 16, 32)


@dataclass
class LayoutLMv3DetectionOutput(ModelOutput):
    """Output of ``LayoutLMv3DetectionModel``.

    Args:
        feature_maps: ``{name: (B, D, H_s, W_s)}`` for each of ``out_features``, in order, at
            strides 4, 8, 16 and 32 of the input image.
        text_hidden_states: ``{name: (B, L_text, D)}`` hidden states of the text tokens at the same
            layers (empty when no text was given).
    """

    feature_maps: dict[str, torch.Tensor] | None = None
    text_hidden_states: dict[str, torch.Tensor] | None = None


def relative_position_bucket(
    relative_position: torch.Tensor, num_buckets: int = 32, max_distance: int = 128
) -> torch.Tensor:
    """T5-style bidirectional bucketing of signed distances, as LayoutLMv3 uses.

    Half of the buckets per direction are exact, the rest logarithmic up to ``max_distance``.
    """
    num_buckets //= 2
    bucket = (relative_position > 0).long() * num_buckets
    distance = relative_position.abs()
    max_exact = num_buckets // 2
    is_small = distance < max_exact
    log_ratio = torch.log(distance.float().clamp(min=1) / max_exact) / math.log(
        max_distance / max_exact
    )
    if_large = (max_exact + log_ratio * (num_buckets - max_exact)).long()
    if_large = if_large.clamp(max=num_buckets - 1)
    return bucket + torch.where(is_small, distance, if_large)


class LayoutLMv3PatchEmbeddings(nn.Module):
    """Image → patch tokens, with the pre-training position embedding resized to the page."""

    def __init__(self, config: LayoutLMv3Config):
        super().__init__()
        self.patch_size = config.patch_size
        self.proj = nn.Conv2d(
            config.num_channels, config.hidden_size, config.patch_size, stride=config.patch_size
        )

    def forward(self, pixel_values: torch.Tensor, pos_embed: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W), pos_embed (1, S*S, D) → (B, Hp*Wp, D)."""
        embeddings = self.proj(pixel_values)
        height, width = embeddings.shape[-2:]
        side = math.isqrt(pos_embed.shape[1])
        grid = pos_embed.reshape(1, side, side, -1).permute(0, 3, 1, 2)
        if (height, width) != (side, side):
            grid = F.interpolate(grid, size=(height, width), mode="bicubic", align_corners=False)
        return (embeddings + grid).flatten(2).transpose(1, 2)


class LayoutLMv3TextEmbeddings(nn.Module):
    """RoBERTa word/position/type embeddings plus the 2-D layout embeddings of each token box."""

    def __init__(self, config: LayoutLMv3Config):
        super().__init__()
        hidden, pad = config.hidden_size, config.pad_token_id
        self.padding_idx = pad
        self.word_embeddings = nn.Embedding(config.vocab_size, hidden, padding_idx=pad)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, hidden)
        self.position_embeddings = nn.Embedding(
            config.max_position_embeddings, hidden, padding_idx=pad
        )
        positions = config.max_2d_position_embeddings
        self.x_position_embeddings = nn.Embedding(positions, config.coordinate_size)
        self.y_position_embeddings = nn.Embedding(positions, config.coordinate_size)
        self.h_position_embeddings = nn.Embedding(positions, config.shape_size)
        self.w_position_embeddings = nn.Embedding(positions, config.shape_size)
        self.LayerNorm = nn.LayerNorm(hidden, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def spatial_embeddings(self, bbox: torch.Tensor) -> torch.Tensor:
        """(B, L, 4) boxes in 0..1000 → (B, L, 4*coordinate_size + 2*shape_size)."""
        limit = self.x_position_embeddings.num_embeddings
        # checked on the device: no host sync on CUDA (an error surfaces at the next sync)
        torch._assert_async(
            ((bbox >= 0) & (bbox < limit)).all(),
            f"bbox coordinates must lie in [0, {limit - 1}] (boxes normalised to 0..1000)",
        )
        height = (bbox[..., 3] - bbox[..., 1]).clamp(0, limit - 1)
        width = (bbox[..., 2] - bbox[..., 0]).clamp(0, limit - 1)
        return torch.cat(
            [
                self.x_position_embeddings(bbox[..., 0]),
                self.y_position_embeddings(bbox[..., 1]),
                self.x_position_embeddings(bbox[..., 2]),
                self.y_position_embeddings(bbox[..., 3]),
                self.h_position_embeddings(height),
                self.w_position_embeddings(width),
            ],
            dim=-1,
        )

    def forward(
        self,
        input_ids: torch.Tensor | None,
        bbox: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Token ids (B, L) or embeddings (B, L, D), boxes (B, L, 4) → (B, L, D)."""
        if inputs_embeds is None:
            inputs_embeds = self.word_embeddings(input_ids)
        batch, length = inputs_embeds.shape[:2]
        if position_ids is None:
            if input_ids is not None:  # RoBERTa: real tokens count up from padding_idx + 1
                real = input_ids.ne(self.padding_idx).long()
                position_ids = real.cumsum(1) * real + self.padding_idx
            else:
                position_ids = torch.arange(length, device=inputs_embeds.device)
                position_ids = (position_ids + self.padding_idx + 1).expand(batch, length)
        if token_type_ids is None:
            token_type_ids = torch.zeros(batch, length, dtype=torch.long, device=bbox.device)
        embeddings = (
            inputs_embeds
            + self.token_type_embeddings(token_type_ids)
            + self.position_embeddings(position_ids)
            + self.spatial_embeddings(bbox)
        )
        return self.dropout(self.LayerNorm(embeddings))


class LayoutLMv3SelfAttention(nn.Module):
    def __init__(self, config: LayoutLMv3Config):
        super().__init__()
        if config.hidden_size % config.num_attention_heads:
            raise ValueError(
                f"hidden_size {config.hidden_size} is not a multiple of num_attention_heads "
                f"{config.num_attention_heads}"
            )
        self.num_heads = config.num_attention_heads
        self.head_dim = config.hidden_size // config.num_attention_heads
        self.query = nn.Linear(config.hidden_size, config.hidden_size)
        self.key = nn.Linear(config.hidden_size, config.hidden_size)
        self.value = nn.Linear(config.hidden_size, config.hidden_size)
        self.dropout_prob = config.attention_probs_dropout_prob
        # > 0: bf16 attention through blocked_attention, this many queries a block; a dtype:
        # attention computed in it whatever the layers around it run in (int8 linear layers
        # with bf16 attention). Both set by LayoutLMv3DetectionModel.set_attention_query_block.
        self.query_block = 0
        self.attention_dtype: torch.dtype | None = None

    def forward(self, hidden_states: torch.Tensor, attn_bias: torch.Tensor | None) -> torch.Tensor:
        """(B, L, D), additive bias broadcastable to (B, heads, L, L) → (B, L, D)."""
        batch, length, _ = hidden_states.shape

        def heads(x):
            return x.view(batch, length, self.num_heads, self.head_dim).transpose(1, 2)

        query, key, value = (heads(f(hidden_states)) for f in (self.query, self.key, self.value))
        layers_dtype = query.dtype
        if self.attention_dtype is not None:
            query, key, value = (x.to(self.attention_dtype) for x in (query, key, value))
        dropout = self.dropout_prob if self.training else 0.0
        if self.query_block and query.dtype == torch.bfloat16:
            context = blocked_attention(query, key, value, attn_bias, self.query_block, dropout)
        else:
            context = F.scaled_dot_product_attention(
                query, key, value, attn_mask=attn_bias, dropout_p=dropout
            )
        return context.to(layers_dtype).transpose(1, 2).reshape(batch, length, -1)


class LayoutLMv3ResidualOutput(nn.Module):
    """Post-LN residual block end: ``LayerNorm(drop_path(dropout(dense(x))) + residual)``."""

    def __init__(self, config: LayoutLMv3Config, input_size: int, drop_path: float):
        super().__init__()
        self.dense = nn.Linear(input_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, hidden_states: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        hidden_states = self.drop_path(self.dropout(self.dense(hidden_states)))
        return self.LayerNorm(hidden_states + residual)


class LayoutLMv3Attention(nn.Module):
    def __init__(self, config: LayoutLMv3Config, drop_path: float):
        super().__init__()
        self.self = LayoutLMv3SelfAttention(config)
        self.output = LayoutLMv3ResidualOutput(config, config.hidden_size, drop_path)

    def forward(self, hidden_states: torch.Tensor, attn_bias: torch.Tensor | None) -> torch.Tensor:
        return self.output(self.self(hidden_states, attn_bias), hidden_states)


class LayoutLMv3Intermediate(nn.Module):
    def __init__(self, config: LayoutLMv3Config):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.intermediate_size)
        self.intermediate_act_fn = ACT2FN[config.hidden_act]

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.intermediate_act_fn(self.dense(hidden_states))


class LayoutLMv3Layer(GradientCheckpointingLayer):
    """One transformer layer; transformers' activation checkpointing recomputes it when on."""

    def __init__(self, config: LayoutLMv3Config, drop_path: float = 0.0):
        super().__init__()
        self.attention = LayoutLMv3Attention(config, drop_path)
        self.intermediate = LayoutLMv3Intermediate(config)
        self.output = LayoutLMv3ResidualOutput(config, config.intermediate_size, drop_path)

    def forward(self, hidden_states: torch.Tensor, attn_bias: torch.Tensor | None) -> torch.Tensor:
        attention_output = self.attention(hidden_states, attn_bias)
        return self.output(self.intermediate(attention_output), attention_output)


class LayoutLMv3Encoder(nn.Module):
    """The transformer layers and the (trainable) relative-position bias tables."""

    def __init__(self, config: LayoutLMv3Config, drop_path_rate: float = 0.0):
        super().__init__()
        rates = torch.linspace(0, drop_path_rate, config.num_hidden_layers).tolist()
        self.layer = nn.ModuleList(LayoutLMv3Layer(config, rate) for rate in rates)
        self.has_relative_attention_bias = config.has_relative_attention_bias
        self.has_spatial_attention_bias = config.has_spatial_attention_bias
        self.rel_pos_bins, self.max_rel_pos = config.rel_pos_bins, config.max_rel_pos
        self.rel_2d_pos_bins, self.max_rel_2d_pos = config.rel_2d_pos_bins, config.max_rel_2d_pos
        heads = config.num_attention_heads
        if self.has_relative_attention_bias:
            self.rel_pos_bias = nn.Linear(config.rel_pos_bins, heads, bias=False)
        if self.has_spatial_attention_bias:
            self.rel_pos_x_bias = nn.Linear(config.rel_2d_pos_bins, heads, bias=False)
            self.rel_pos_y_bias = nn.Linear(config.rel_2d_pos_bins, heads, bias=False)

    @staticmethod
    def _bias(table: nn.Linear, coords: torch.Tensor, bins: int, max_distance: int):
        """Coordinates (B, L) → bias (B, heads, L, L) from the bucketed pairwise differences."""
        buckets = relative_position_bucket(
            coords[:, None, :] - coords[:, :, None], bins, max_distance
        )
        return F.embedding(buckets, table.weight.t()).permute(0, 3, 1, 2)

    def attention_bias(
        self,
        position_ids: torch.Tensor | None,
        bbox: torch.Tensor | None,
        key_mask: torch.Tensor | None,
        dtype: torch.dtype,
    ) -> torch.Tensor | None:
        """The additive attention mask every layer shares, built once per forward: relative 1-D
        (from ``position_ids`` (B, L)) and spatial 2-D (from ``bbox`` (B, L, 4): x0 and y1)
        biases scaled for SDPA's 1/sqrt(d), plus ``dtype``'s lowest value on padded keys
        (``key_mask`` (B, L), False = padding).

        Returns (B, heads, L, L) in ``dtype`` (the attention's compute dtype, so no layer casts
        it again), contiguous in its last dimension with rows padded to a multiple of 16 (what
        CUDA's memory-efficient SDPA kernel needs, else it copies the bias in every layer); a
        (B, 1, 1, L) bool mask when only padding is masked; None when nothing is.
        """
        if not (self.has_relative_attention_bias or self.has_spatial_attention_bias):
            return None if key_mask is None else key_mask[:, None, None, :]
        batch, length = (position_ids if position_ids is not None else bbox[..., 0]).shape
        heads = self.layer[0].attention.self.num_heads
        storage = torch.zeros(
            batch,
            heads,
            length,
            -(-length // 16) * 16,
            dtype=dtype,
            device=(bbox if bbox is not None else position_ids).device,
        )
        bias = storage[..., :length]
        if self.has_relative_attention_bias:
            bias += self._bias(
                self.rel_pos_bias, position_ids, self.rel_pos_bins, self.max_rel_pos
            ).to(dtype)
        if self.has_spatial_attention_bias:
            args = (self.rel_2d_pos_bins, self.max_rel_2d_pos)
            bias += self._bias(self.rel_pos_x_bias, bbox[..., 0], *args).to(dtype)
            bias += self._bias(self.rel_pos_y_bias, bbox[..., 3], *args).to(dtype)
        bias /= math.sqrt(self.layer[0].attention.self.head_dim)
        if key_mask is not None:
            bias.masked_fill_(~key_mask[:, None, None, :], torch.finfo(dtype).min)
        return bias

    def forward(
        self,
        hidden_states: torch.Tensor,
        attn_bias: torch.Tensor | None,
        tap_layers: Sequence[int] = (),
    ) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
        """(B, L, D) → last hidden states (B, L, D), ``{i: output of layer i}`` for tap_layers."""
        taps = {}
        for index, layer in enumerate(self.layer):
            hidden_states = layer(hidden_states, attn_bias)
            if index in tap_layers:
                taps[index] = hidden_states
        return hidden_states, taps


class LayoutLMv3DetectionModel(LayoutLMv3PreTrainedModel):
    """LayoutLMv3 transformer over OCR text tokens and image patches, for layout detection.

    A transformers ``PreTrainedModel``: ``from_pretrained`` (a hub folder, with or without the
    ``layoutlmv3.`` prefix), ``save_pretrained`` and ``activation_checkpointing_enable`` /
    ``gradient_checkpointing_enable`` work as for any transformers model. Single weight files
    and unilm's detectron2 checkpoints load too (see :meth:`from_pretrained`).

    Args:
        config: ``transformers.LayoutLMv3Config``.
        detection: return the feature pyramid of ``out_features`` instead of hidden states.
        out_features: names ``layer<i>`` (0-based layer index) of the four pyramid levels, mapped
            in order to strides 4, 8, 16 and 32; the last must be the last layer.
        drop_path_rate: stochastic depth, linearly increasing to this rate at the last layer.
        gradient_checkpointing: recompute each layer in the backward pass.
    """

    supports_gradient_checkpointing = True
    # transformers' model keeps these derived buffers; this one computes them
    _keys_to_ignore_on_load_unexpected = [r"position_ids", r"visual_bbox"]  # noqa: RUF012

    def __init__(
        self,
        config: LayoutLMv3Config,
        detection: bool = False,
        out_features: Sequence[str] = DEFAULT_OUT_FEATURES,
        drop_path_rate: float = 0.0,
        gradient_checkpointing: bool = False,
    ):
        super().__init__(config)
        self.detection = detection
        if config.text_embed:
            self.embeddings = LayoutLMv3TextEmbeddings(config)
        if config.visual_embed:
            grid = config.input_size // config.patch_size
            self.patch_embed = LayoutLMv3PatchEmbeddings(config)
            self.cls_token = nn.Parameter(torch.zeros(1, 1, config.hidden_size))
            self.pos_embed = nn.Parameter(torch.zeros(1, grid * grid + 1, config.hidden_size))
            self.norm = nn.LayerNorm(config.hidden_size, eps=1e-6)
            self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
            self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.encoder = LayoutLMv3Encoder(config, drop_path_rate)

        if detection:
            if len(out_features) != len(PYRAMID_STRIDES):
                raise ValueError(f"out_features needs 4 layers (strides 4/8/16/32): {out_features}")
            self.out_features = tuple(out_features)
            self.out_indices = tuple(int(name.removeprefix("layer")) for name in out_features)
            last = config.num_hidden_layers - 1
            if max(self.out_indices) > last:
                raise ValueError(
                    f"out_features {list(out_features)} name a layer beyond the model's "
                    f"{config.num_hidden_layers} layers (0-based)"
                )
            if max(self.out_indices) < last:  # layers after the last tap would never run
                raise ValueError(
                    f"out_features {list(out_features)} leave layers {max(self.out_indices) + 1}"
                    f"..{last} of the {config.num_hidden_layers}-layer model unused (their "
                    "weights would never train, and DDP fails on unused parameters): the last "
                    f"tap must be layer{last}. unilm's taps: layer3/5/7/11 for 12 layers (base), "
                    "layer7/11/15/23 for 24 (large); set MODEL.LAYOUTLMV3.OUT_FEATURES and "
                    "MODEL.FPN.IN_FEATURES together (configs/publaynet/"
                    "cascade_layoutlmv3_large_image.yaml)"
                )
            dim = config.hidden_size
            self.fpn1 = nn.Sequential(
                nn.ConvTranspose2d(dim, dim, kernel_size=2, stride=2),
                nn.BatchNorm2d(dim),
                nn.GELU(),
                nn.ConvTranspose2d(dim, dim, kernel_size=2, stride=2),
            )
            self.fpn2 = nn.Sequential(nn.ConvTranspose2d(dim, dim, kernel_size=2, stride=2))
            self.fpn3 = nn.Identity()
            self.fpn4 = nn.MaxPool2d(kernel_size=2, stride=2)
        self.post_init()
        if gradient_checkpointing:
            self.activation_checkpointing_enable({"use_reentrant": False})

    @torch.no_grad()
    def _init_weights(self, module) -> None:
        """transformers' initialisation (normal(0, initializer_range), zero biases, unit norms,
        padding rows zero), and zero ``cls_token`` / ``pos_embed`` as transformers' model."""
        super()._init_weights(module)
        if module is self and self.config.visual_embed:
            self.cls_token.zero_()
            self.pos_embed.zero_()

    @classmethod
    def from_pretrained(cls, path, *args, config=None, strict: bool = False, **kwargs):
        """A transformers folder (``config.json`` + ``model.safetensors`` / ``pytorch_model.bin``,
        with or without the ``layoutlmv3.`` prefix) through transformers' ``from_pretrained``;
        a single ``.bin`` / ``.safetensors`` / ``.pth`` file with ``config`` (a
        ``LayoutLMv3Config`` or a ``config.json`` path; default: the one beside the file), a
        unilm detectron2 detector included, through :func:`layoutlmv3.loading.load_pretrained`,
        whose one report lists missing / unexpected / mis-shaped keys (``strict=True`` raises
        instead). ``kwargs`` go to the constructor (``detection``, ``out_features``, ...)."""
        from .loading import WEIGHT_FILES, load_pretrained

        folder = Path(path)
        hub_folder = folder.is_dir() and any((folder / name).is_file() for name in WEIGHT_FILES)
        if hub_folder and config is None and not strict and not args:
            return super().from_pretrained(folder, **kwargs)
        return load_pretrained(cls, path, config=config, strict=strict, **kwargs)

    def set_attention_query_block(self, block: int, dtype: torch.dtype | None = None) -> None:
        """Run bf16 attention through :func:`blocked_attention`, ``block`` queries at a time (0:
        PyTorch's fused attention, the default). ``dtype``: compute attention (and build its bias)
        in it whatever the layers around it run in — bf16 attention between int8 linear layers;
        None: in theirs."""
        for layer in self.encoder.layer:
            layer.attention.self.query_block = block
            layer.attention.self.attention_dtype = dtype

    @staticmethod
    def visual_bbox(height: int, width: int, device=None) -> torch.Tensor:
        """Boxes (1 + height*width, 4) in 0..1000 of the cls token and each patch, row-major."""
        xs = torch.arange(0, 1000 * (width + 1), 1000, device=device) // width
        ys = torch.arange(0, 1000 * (height + 1), 1000, device=device) // height
        grid_y, grid_x = torch.meshgrid(ys[:-1], xs[:-1], indexing="ij")
        grid_y1, grid_x1 = torch.meshgrid(ys[1:], xs[1:], indexing="ij")
        patches = torch.stack([grid_x, grid_y, grid_x1, grid_y1], dim=-1).view(-1, 4)
        cls_box = torch.full((1, 4), 999, device=device)  # [1, 1, 999, 999], built on the device
        cls_box[:, :2] = 1
        return torch.cat([cls_box, patches])

    def embed_image(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) → cls + patch tokens (B, 1 + Hp*Wp, D), position-embedded and normed."""
        patches = self.patch_embed(pixel_values, self.pos_embed[:, 1:])
        cls = (self.cls_token + self.pos_embed[:, :1]).expand(len(patches), -1, -1)
        return self.norm(torch.cat([cls, patches], dim=1))

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        bbox: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        pixel_values: torch.Tensor | None = None,
    ) -> BaseModelOutput | LayoutLMv3DetectionOutput:
        """Text ``input_ids`` (B, L) with ``bbox`` (B, L, 4) in 0..1000 and ``attention_mask``
        (B, L) (0 = padding), and/or ``pixel_values`` (B, 3, H, W), H and W divisible by the patch
        size. Returns ``last_hidden_state`` (B, L + 1 + Hp*Wp, D), text first; in detection mode a
        :class:`LayoutLMv3DetectionOutput`."""
        has_text = input_ids is not None or inputs_embeds is not None
        if not has_text and pixel_values is None:
            raise ValueError("give input_ids (or inputs_embeds), pixel_values, or both")
        if self.detection and pixel_values is None:
            raise ValueError("detection mode needs pixel_values")
        encoder = self.encoder
        with_bias = encoder.has_relative_attention_bias or encoder.has_spatial_attention_bias
        segments, masks, boxes, positions = [], [], [], []

        if has_text:
            reference = input_ids if input_ids is not None else inputs_embeds[..., 0]
            batch, length = reference.shape
            device = reference.device
            if bbox is None:
                bbox = torch.zeros(batch, length, 4, dtype=torch.long, device=device)
            if attention_mask is None:
                attention_mask = torch.ones(batch, length, dtype=torch.long, device=device)
            segments.append(
                self.embeddings(input_ids, bbox, token_type_ids, position_ids, inputs_embeds)
            )
            masks.append(attention_mask.bool())
            boxes.append(bbox)
            positions.append(torch.arange(length, device=device).expand(batch, length))

        if pixel_values is not None:
            patch = self.config.patch_size
            height, width = pixel_values.shape[-2:]
            if height % patch or width % patch:
                raise ValueError(f"image size {height}x{width} is not divisible by patch {patch}")
            grid_h, grid_w = height // patch, width // patch
            visual = self.embed_image(pixel_values)
            batch, length = visual.shape[:2]
            segments.append(visual)
            masks.append(torch.ones(batch, length, dtype=torch.bool, device=visual.device))
            if with_bias:
                vbox = self.visual_bbox(grid_h, grid_w, device=visual.device)
                boxes.append(vbox.expand(batch, -1, -1))
                positions.append(torch.arange(length, device=visual.device).expand(batch, length))

        hidden_states = torch.cat(segments, dim=1)
        if pixel_values is not None:
            hidden_states = self.dropout(self.LayerNorm(hidden_states))
        compute_dtype = hidden_states.dtype
        if torch.is_autocast_enabled(hidden_states.device.type):
            compute_dtype = torch.get_autocast_dtype(hidden_states.device.type)
        # the attention's own dtype where set_attention_query_block gave one (every layer's)
        compute_dtype = encoder.layer[0].attention.self.attention_dtype or compute_dtype
        attn_bias = encoder.attention_bias(
            torch.cat(positions, dim=1) if with_bias else None,
            torch.cat(boxes, dim=1).long() if with_bias else None,
            torch.cat(masks, dim=1) if has_text else None,  # only text has padding
            compute_dtype,
        )

        if not self.detection:
            last, _ = self.encoder(hidden_states, attn_bias)
            return BaseModelOutput(last_hidden_state=last)

        _, taps = self.encoder(hidden_states, attn_bias, tap_layers=self.out_indices)
        text_length = segments[0].shape[1] if has_text else 0
        feature_maps, text_states = {}, {}
        pyramid = (self.fpn1, self.fpn2, self.fpn3, self.fpn4)
        for name, index, op in zip(self.out_features, self.out_indices, pyramid):
            tokens = taps[index]
            patches = tokens[:, text_length + 1 :]
            grid = patches.transpose(1, 2).reshape(len(tokens), -1, grid_h, grid_w)
            feature_maps[name] = op(grid.contiguous())
            if has_text:
                text_states[name] = tokens[:, :text_length]
        return LayoutLMv3DetectionOutput(feature_maps=feature_maps, text_hidden_states=text_states)
