"""ditod.modeling.fusion against a naive per-box loop (x → columns, y → rows, each page's own
size)."""

import math

import pytest
import torch

from ditod.modeling.fusion import (
    build_text_fusion,
    dense_text_grid,
    pool_segments,
    scatter_text_to_grid,
)


def naive_text_map(feats, boxes, mask, sizes, grid_hw, stride):
    batch, num_tokens, channels = feats.shape
    height, width = grid_hw
    out = torch.zeros(batch, channels, height, width, dtype=torch.float64)
    for b in range(batch):
        page_h, page_w = sizes[b]
        for n in range(num_tokens):
            if not mask[b, n]:
                continue
            x0, y0, x1, y1 = boxes[b, n].tolist()

            def cell(value, size, limit):
                return min(max(math.floor(value / 1000 * size / stride), 0), limit - 1)

            c0, c1 = cell(x0, page_w, width), cell(x1, page_w, width)
            r0, r1 = cell(y0, page_h, height), cell(y1, page_h, height)
            out[b, :, r0 : r1 + 1, c0 : c1 + 1] += feats[b, n].double()[:, None, None]
    return out.float()


def random_batch(seed=0, batch=3, tokens=40, channels=8):
    generator = torch.Generator().manual_seed(seed)
    x0 = torch.randint(0, 1000, (batch, tokens), generator=generator)
    y0 = torch.randint(0, 1000, (batch, tokens), generator=generator)
    boxes = torch.stack(
        [
            x0,
            y0,
            (x0 + torch.randint(0, 400, (batch, tokens), generator=generator)).clamp(max=1000),
            (y0 + torch.randint(0, 80, (batch, tokens), generator=generator)).clamp(max=1000),
        ],
        -1,
    )
    boxes[0, 0] = torch.tensor([0, 0, 1000, 1000])  # whole page
    boxes[1, 0] = torch.tensor([999, 999, 1000, 1000])  # the far corner
    boxes[2, 0] = torch.tensor([0, 500, 0, 500])  # degenerate: one cell
    mask = torch.ones(batch, tokens, dtype=torch.bool)
    mask[1, 30:] = False  # padding
    feats = torch.randn(batch, tokens, channels, generator=generator)
    feats[1, 30:] = 1e6  # padding carries garbage that must not leak
    sizes = [(800, 608), (704, 544), (480, 320)]  # different pages, one padded batch
    return feats, boxes, mask, sizes


def test_scatter_equals_the_naive_loop():
    feats, boxes, mask, sizes = random_batch()
    grid_hw, stride = (25, 19), 32
    expected = naive_text_map(feats, boxes, mask, sizes, grid_hw, stride)
    got = scatter_text_to_grid(feats, boxes, mask, sizes, grid_hw, stride)
    assert got.shape == (3, 8, 25, 19)
    assert (got - expected).abs().max().item() <= 1e-4
    # the small page reaches at most one cell past its own size (x = 1000 lands on cell size/stride)
    outside = torch.cat(
        [got[2, :, 480 // 32 + 1 :].flatten(), got[2, :, :, 320 // 32 + 1 :].flatten()]
    )
    assert outside.abs().max() <= 1e-5


def test_scatter_gradient_equals_the_naive_loop():
    feats, boxes, mask, sizes = random_batch(seed=1)
    feats[1, 30:] = 0.0
    weight = torch.randn(3, 8, 25, 19, generator=torch.Generator().manual_seed(2))
    ours = feats.clone().requires_grad_(True)
    (scatter_text_to_grid(ours, boxes, mask, sizes, (25, 19), 32) * weight).sum().backward()
    reference = feats.clone().requires_grad_(True)
    (naive_text_map(reference, boxes, mask, sizes, (25, 19), 32) * weight).sum().backward()
    assert (ours.grad - reference.grad).abs().max().item() <= 1e-4
    assert ours.grad[1, 30:].abs().max() == 0  # padding gets no gradient


def naive_mean_map(feats, boxes, mask, sizes, grid_hw, stride):
    """The naive sum divided by the number of tokens covering each cell."""
    ones = torch.ones(*feats.shape[:2], 1)
    total = naive_text_map(feats, boxes, mask, sizes, grid_hw, stride)
    return total / naive_text_map(ones, boxes, mask, sizes, grid_hw, stride).clamp(min=1)


@pytest.mark.parametrize("form", ["sparse", "dense"])
def test_mean_of_the_tokens_covering_a_cell(form):
    feats, boxes, mask, sizes = random_batch(seed=6)
    scatter = scatter_text_to_grid if form == "sparse" else dense_text_grid
    got = scatter(feats, boxes, mask, torch.tensor(sizes), (25, 19), 32, reduce="mean")
    expected = naive_mean_map(feats, boxes, mask, sizes, (25, 19), 32)
    assert (got - expected).abs().max().item() <= 1e-4
    # a cell's mean is never longer than its longest token, however many cover it
    assert got.norm(dim=1).max() <= feats[mask].norm(dim=-1).max() + 1e-5


def test_dense_form_for_traced_graphs_equals_the_naive_loop():
    feats, boxes, mask, sizes = random_batch(seed=3)
    expected = naive_text_map(feats, boxes, mask, sizes, (25, 19), 32)
    got = dense_text_grid(feats, boxes, mask, torch.tensor(sizes), (25, 19), 32)
    assert (got - expected).abs().max().item() <= 1e-4


def test_a_traced_scatter_holds_for_other_token_counts_and_sizes():
    """Traced (as export traces it: the dense form), then run on a batch of another shape."""

    def text_map(feats, boxes, mask, sizes, grid):
        return scatter_text_to_grid(feats, boxes, mask, sizes, grid.shape[-2:], 32)

    feats, boxes, mask, sizes = random_batch(seed=4, tokens=12)
    traced = torch.jit.trace(
        text_map, (feats, boxes, mask, torch.tensor(sizes), torch.zeros(25, 19)), check_trace=False
    )
    feats, boxes, mask, sizes = random_batch(seed=5, tokens=40)
    expected = naive_text_map(feats, boxes, mask, sizes, (22, 17), 32)
    got = traced(feats, boxes, mask, torch.tensor(sizes), torch.zeros(22, 17))
    assert got.shape == (3, 8, 22, 17)
    assert (got - expected).abs().max().item() <= 1e-4


def test_axes_are_not_swapped():
    feats = torch.ones(1, 1, 1)
    wide_box = torch.tensor([[[0, 0, 1000, 10]]])  # a full-width line at the top
    got = scatter_text_to_grid(
        feats, wide_box, torch.ones(1, 1, dtype=torch.bool), [(320, 640)], (10, 20), 32
    )
    assert got[0, 0, 0].tolist() == [1.0] * 20 and got[0, 0, 1:].sum() == 0


@pytest.mark.parametrize("stride", [4, 8, 16, 32])
def test_scatter_every_stride(stride):
    feats, boxes, mask, sizes = random_batch(seed=stride)
    grid_hw = (800 // stride, 608 // stride)
    expected = naive_text_map(feats, boxes, mask, sizes, grid_hw, stride)
    got = scatter_text_to_grid(feats, boxes, mask, sizes, grid_hw, stride)
    assert (got - expected).abs().max().item() <= 1e-4


@pytest.mark.parametrize("fusion_type", ["add", "gated", "gated_add", "concat"])
def test_fusion_modules_against_the_naive_text_map(fusion_type):
    torch.manual_seed(0)
    feats, boxes, mask, sizes = random_batch()
    feature_map = torch.randn(3, 8, 25, 19)
    fusion = build_text_fusion(fusion_type, channels=8)
    got = fusion(feature_map, scatter_text_to_grid(feats, boxes, mask, sizes, (25, 19), 32))
    text_map = naive_text_map(feats, boxes, mask, sizes, (25, 19), 32)
    if fusion_type == "add":
        expected = feature_map + text_map
    elif fusion_type == "gated":
        gate = torch.sigmoid(fusion.gate(torch.cat([feature_map, text_map], 1)))
        expected = gate * feature_map + (1 - gate) * text_map
        assert 0.0 < gate.min() < 0.5 < gate.max() < 1.0  # no ReLU before the sigmoid
    elif fusion_type == "gated_add":
        gate = torch.sigmoid(fusion.gate(torch.cat([feature_map, text_map], 1)))
        expected = feature_map + gate * text_map
    else:
        expected = feature_map  # the projection starts as the identity on the image features
    assert (got - expected).abs().max().item() <= 1e-3 * max(1.0, expected.abs().max().item())


def test_gate_bias_sets_how_much_image_the_gate_starts_with():
    """FUSION.GATE_BIAS b: the untrained gate keeps ~sigmoid(b) of the image in every cell."""
    torch.manual_seed(0)
    feature_map, text_map = torch.randn(2, 8, 12, 10), torch.zeros(2, 8, 12, 10)
    for bias, kept in [(0.0, 0.5), (2.0, 0.881)]:
        fusion = build_text_fusion("gated", channels=8, gate_bias=bias)
        gate = torch.sigmoid(fusion.gate(torch.cat([feature_map, text_map], 1)))
        assert abs(gate.mean().item() - kept) < 0.03
        fused = fusion(feature_map, text_map)  # no text: the image, scaled by the gate
        assert torch.allclose(fused, gate * feature_map)


def test_gated_add_passes_the_image_whole_and_gates_the_text():
    """gated_add: where there is no text the image is unchanged (the convex ``gated`` halves
    it); where there is, the text enters scaled by the gate, ~sigmoid(GATE_BIAS) untrained."""
    torch.manual_seed(0)
    feature_map = torch.randn(2, 8, 12, 10)
    text_map = torch.zeros(2, 8, 12, 10)
    text_map[:, :, 3:5, 2:8] = 4 * torch.randn(2, 8, 2, 6)
    fusion = build_text_fusion("gated_add", channels=8)
    fused = fusion(feature_map, text_map)
    free = text_map.abs().sum(1, keepdim=True).expand_as(text_map) == 0
    assert torch.equal(fused[free], feature_map[free])
    added = (fused - feature_map)[:, :, 3:5, 2:8] / text_map[:, :, 3:5, 2:8]
    assert 0.3 < added.mean().item() < 0.7 and added.min() > 0 and added.max() < 1
    halved = build_text_fusion("gated", channels=8)(feature_map, text_map)
    assert (halved[free] / feature_map[free]).mean().item() < 0.7


def test_scatter_rejects_unknown_reduction():
    feats, boxes, mask, sizes = random_batch()
    with pytest.raises(ValueError, match="reduce 'max' is not one of"):
        scatter_text_to_grid(feats, boxes, mask, sizes, (25, 19), 32, reduce="max")


def test_fusion_rejects_unknown_type():
    with pytest.raises(ValueError, match="fusion type 'sum' is not one of"):
        build_text_fusion("sum", channels=8)


def test_all_padding_gives_an_empty_map():
    feats, boxes, _, sizes = random_batch(seed=3)
    mask = torch.zeros(feats.shape[:2], dtype=torch.bool)
    text_map = scatter_text_to_grid(feats, boxes, mask, sizes, (25, 19), 32)
    assert text_map.shape == (3, 8, 25, 19) and text_map.abs().max() == 0


def segment_page(seed=7):
    """Two pages of <s> segments </s> as the tokenizer lays them out: each segment's tokens
    consecutive with the segment's box; padding after the second page's tokens."""
    generator = torch.Generator().manual_seed(seed)
    pages = [[3, 1, 5, 2], [4, 4, 1]]  # tokens per segment; page 2's first two share a box
    num_tokens = 2 + max(sum(p) for p in pages) + 3
    boxes = torch.zeros(2, num_tokens, 4, dtype=torch.long)
    mask = torch.zeros(2, num_tokens, dtype=torch.bool)
    segments = []
    for b, lengths in enumerate(pages):
        position = 1  # after <s>
        for k, length in enumerate(lengths):
            box = torch.randint(0, 900, (2,), generator=generator)
            box = torch.cat([box, box + torch.randint(5, 100, (2,), generator=generator)])
            if b == 1 and k == 1:
                box = boxes[1, position - 1].clone()  # same box as the segment before
            boxes[b, position : position + length] = box
            mask[b, position : position + length] = True
            segments.append((b, position, length))
            position += length
    feats = torch.randn(2, num_tokens, 8, generator=generator)
    feats[~mask] = float("nan")  # specials and padding carry garbage that must not leak
    return feats, boxes, mask, segments


def test_segment_features_are_their_tokens_mean_counted_once():
    feats, boxes, mask, segments = segment_page()
    pooled, first = pool_segments(feats, boxes, mask)
    expected_first = torch.zeros_like(mask)
    for b, start, length in segments:
        if (b, start) == (1, 1 + 4):  # page 2's first two segments share a box: one run
            continue
        length = 4 + 4 if (b, start) == (1, 1) else length
        expected_first[b, start] = True
        mean = feats[b, start : start + length].mean(0)
        for k in range(start, start + length):  # every token holds its segment's mean
            assert torch.allclose(pooled[b, k], mean, atol=1e-6)
    assert torch.equal(first, expected_first)
    assert torch.isfinite(pooled[first]).all()


def test_segments_scattered_once_each_over_their_boxes():
    """SE through the scatter equals the naive map of one feature per segment at its box."""
    feats, boxes, mask, segments = segment_page(seed=8)
    sizes = [(800, 608), (704, 544)]
    pooled, first = pool_segments(feats, boxes, mask)
    got = scatter_text_to_grid(pooled, boxes, first, sizes, (25, 19), 32)
    one_per_segment = torch.zeros_like(feats)
    reference_mask = torch.zeros_like(mask)
    for b, start, length in segments:
        if (b, start) == (1, 1 + 4):  # merged into the segment before (same box)
            continue
        length = 4 + 4 if (b, start) == (1, 1) else length
        one_per_segment[b, start] = feats[b, start : start + length].mean(0)
        reference_mask[b, start] = True
    expected = naive_text_map(one_per_segment, boxes, reference_mask, sizes, (25, 19), 32)
    assert (got - expected).abs().max().item() <= 1e-4


def test_a_new_fusion_type_is_one_registered_class(bpe_folder):
    """A user's fusion: one class with the decorator, chosen by FUSION.TYPE in YAML."""
    from detectron2.modeling import build_model
    from test_inference import tiny_cfg

    from ditod.modeling.fusion import FUSIONS, register_fusion
    from ditod.modeling.fusion import TextFusion as Base

    @register_fusion("scaled_add")
    class ScaledAdd(Base):
        def __init__(self, channels, gate_bias=0.0):
            super().__init__(channels)
            self.scale = torch.nn.Parameter(torch.full((1, channels, 1, 1), 0.5))

        def forward(self, feature_map, text_map):
            return feature_map + self.scale * text_map

    try:
        feature_map, text_map = torch.randn(1, 8, 4, 4), torch.randn(1, 8, 4, 4)
        fused = build_text_fusion("scaled_add", channels=8)(feature_map, text_map)
        assert torch.allclose(fused, feature_map + 0.5 * text_map)
        with pytest.raises(ValueError, match="'scaled_add' is already registered"):
            register_fusion("scaled_add")(type("Other", (Base,), {}))
        cfg = tiny_cfg(bpe_folder)
        cfg.MODEL.LAYOUTLMV3.FUSION.TYPE = "scaled_add"
        model = build_model(cfg)
        assert all(isinstance(f, ScaledAdd) for f in model.backbone.bottom_up.fusions.values())
        assert len(model.backbone.bottom_up.fusions) == 1
    finally:
        FUSIONS.pop("scaled_add")
