"""layoutlmv3.LayoutLMv3DetectionModel against transformers' model, and its detection behaviour."""

import logging
from pathlib import Path

import pytest
import torch
from transformers import LayoutLMv3Config, LayoutLMv3ForTokenClassification
from transformers import LayoutLMv3Model as HFLayoutLMv3Model

from layoutlmv3 import IncompatibleWeights, LayoutLMv3DetectionModel, load_state_dict, modeling
from layoutlmv3.blocked_attention import blocked_attention

VOCAB = 300


def tiny_config(bias: bool = False, **overrides) -> LayoutLMv3Config:
    fields = dict(
        hidden_size=64,
        num_hidden_layers=4,
        num_attention_heads=4,
        intermediate_size=128,
        vocab_size=VOCAB,
        coordinate_size=12,
        shape_size=8,
        has_relative_attention_bias=bias,
        has_spatial_attention_bias=bias,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    fields.update(overrides)
    return LayoutLMv3Config(**fields)


def text_inputs(batch: int = 2, length: int = 10, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, VOCAB, (batch, length), generator=generator)
    ids[:, 0], ids[:, -1] = 0, 2
    x0 = torch.randint(0, 600, (batch, length), generator=generator)
    y0 = torch.randint(0, 600, (batch, length), generator=generator)
    size = torch.randint(1, 300, (batch, length, 2), generator=generator)
    boxes = torch.stack([x0, y0, x0 + size[..., 0], y0 + size[..., 1]], dim=-1)
    return dict(
        input_ids=ids, bbox=boxes, attention_mask=torch.ones(batch, length, dtype=torch.long)
    )


def random_image(batch=2, height=224, width=224, seed=0):
    return torch.randn(batch, 3, height, width, generator=torch.Generator().manual_seed(seed))


def randomize_pos_embed(model):
    """transformers initialises cls_token/pos_embed to zero; make them matter in the comparison."""
    with torch.no_grad():
        model.pos_embed.normal_(0, 0.5)
        model.cls_token.normal_(0, 0.5)


@pytest.mark.parametrize("bias", [False, True], ids=["no-bias", "rel+spatial-bias"])
@pytest.mark.parametrize(
    "saving", ["safetensors", "bin", "prefixed-safetensors", "prefixed-bin-file+config"]
)
def test_equals_transformers_after_from_pretrained(tmp_path, bias, saving):
    torch.manual_seed(0)
    config = tiny_config(bias=bias)
    safe = "safetensors" in saving
    if saving.startswith("prefixed"):  # keys "layoutlmv3.*" next to a task head, as on the hub
        holder = LayoutLMv3ForTokenClassification(config).eval()
        reference = holder.layoutlmv3
    else:
        holder = reference = HFLayoutLMv3Model(config).eval()
    randomize_pos_embed(reference)
    holder.save_pretrained(tmp_path)
    if not safe:  # transformers 5 writes safetensors only; a .bin as older releases wrote it
        (tmp_path / "model.safetensors").unlink()
        torch.save(holder.state_dict(), tmp_path / "pytorch_model.bin")
    if saving.endswith("file+config"):
        weights = tmp_path / ("model.safetensors" if safe else "pytorch_model.bin")
        assert weights.is_file()
        ours = LayoutLMv3DetectionModel.from_pretrained(
            weights, config=tmp_path / "config.json", strict=True
        )
    else:
        ours = LayoutLMv3DetectionModel.from_pretrained(tmp_path, strict=True)
    ours.eval()

    text, image = text_inputs(), random_image()
    cases = {
        "text": text,
        "image": dict(pixel_values=image),
        "text+image": {**text, "pixel_values": image},
    }
    for name, inputs in cases.items():
        with torch.no_grad():
            expected = reference(**inputs).last_hidden_state
            got = ours(**inputs).last_hidden_state
        assert got.shape == expected.shape, name
        assert (got - expected).abs().max().item() <= 1e-5, name


def test_equals_transformers_with_padded_text():
    torch.manual_seed(0)
    config = tiny_config(bias=True)
    reference = HFLayoutLMv3Model(config).eval()
    randomize_pos_embed(reference)
    ours = LayoutLMv3DetectionModel(config).eval()
    ours.load_state_dict(reference.state_dict(), strict=False)
    inputs = text_inputs()
    inputs["attention_mask"][1, 6:] = 0
    inputs["input_ids"][1, 6:] = config.pad_token_id
    inputs["pixel_values"] = random_image()
    with torch.no_grad():
        expected = reference(**inputs).last_hidden_state
        got = ours(**inputs).last_hidden_state
    real = torch.ones(got.shape[:2], dtype=torch.bool)
    real[1, 6:10] = False  # padded positions' outputs are not meaningful
    assert (got - expected)[real].abs().max().item() <= 1e-5


def detection_model(bias=False, **kwargs):
    torch.manual_seed(0)
    model = LayoutLMv3DetectionModel(
        tiny_config(bias=bias),
        detection=True,
        out_features=("layer0", "layer1", "layer2", "layer3"),
        **kwargs,
    )
    randomize_pos_embed(model)
    return model.eval()


def test_detection_pyramid_shapes_on_a_large_page():
    model = detection_model()
    pixels = random_image(batch=2, height=480, width=640)
    out = model(**text_inputs(), pixel_values=pixels)
    shapes = {name: tuple(m.shape) for name, m in out.feature_maps.items()}
    assert shapes == {
        "layer0": (2, 64, 120, 160),  # stride 4
        "layer1": (2, 64, 60, 80),  # stride 8
        "layer2": (2, 64, 30, 40),  # stride 16
        "layer3": (2, 64, 15, 20),  # stride 32
    }
    assert {name: tuple(t.shape) for name, t in out.text_hidden_states.items()} == {
        name: (2, 10, 64) for name in shapes
    }
    image_only = model(pixel_values=pixels)
    assert image_only.text_hidden_states == {}


def test_page_size_not_divisible_by_patch_is_an_error():
    with pytest.raises(ValueError, match="not divisible by patch 16"):
        detection_model()(pixel_values=torch.zeros(1, 3, 100, 224))


def test_interpolated_pos_embed_equals_pos_embed_at_224():
    model = detection_model()
    pixels = random_image(batch=1)
    embed = model.patch_embed
    projected = embed.proj(pixels).flatten(2).transpose(1, 2)
    got = embed(pixels, model.pos_embed[:, 1:]) - projected
    assert torch.allclose(got, model.pos_embed[:, 1:].expand_as(got), atol=1e-6)
    # At another size the grid is a resize of the 14x14 table, not a crop or a repeat of it.
    bigger = embed(random_image(batch=1, height=448, width=448), model.pos_embed[:, 1:])
    assert bigger.shape[1] == 28 * 28


def test_padding_text_does_not_change_patch_features():
    model = detection_model(bias=True)
    pixels = random_image(batch=1, height=256, width=192)
    text = text_inputs(batch=1, length=8)
    padded = {
        "input_ids": torch.cat([text["input_ids"], torch.ones(1, 5, dtype=torch.long)], 1),
        "bbox": torch.cat([text["bbox"], torch.zeros(1, 5, 4, dtype=torch.long)], 1),
        "attention_mask": torch.cat(
            [text["attention_mask"], torch.zeros(1, 5, dtype=torch.long)], 1
        ),
    }
    with torch.no_grad():
        plain = model(**text, pixel_values=pixels)
        extended = model(**padded, pixel_values=pixels)
    for name, feature_map in plain.feature_maps.items():
        assert (feature_map - extended.feature_maps[name]).abs().max().item() <= 1e-5, name
        text_states = extended.text_hidden_states[name][:, :8]
        assert (plain.text_hidden_states[name] - text_states).abs().max().item() <= 1e-5


@pytest.mark.parametrize("bias", [False, True])
def test_gradients_reach_every_trainable_parameter(bias):
    model = detection_model(bias=bias).train()
    out = model(**text_inputs(), pixel_values=random_image(batch=2, height=160, width=128))
    loss = sum(m.float().pow(2).mean() for m in out.feature_maps.values())
    loss = loss + sum(t.pow(2).mean() for t in out.text_hidden_states.values())
    loss.backward()
    # Token types are all 0 and the pad row of the embeddings is fixed, so these get no gradient.
    no_grad = {"embeddings.token_type_embeddings.weight"}
    missing = [
        name for name, p in model.named_parameters() if (p.grad is None or not p.grad.abs().sum())
    ]
    assert set(missing) <= no_grad, missing
    if bias:
        for table in ("rel_pos_bias", "rel_pos_x_bias", "rel_pos_y_bias"):
            assert getattr(model.encoder, table).weight.grad.abs().sum() > 0


def test_gradient_checkpointing_gives_the_same_gradients():
    inputs = dict(**text_inputs(), pixel_values=random_image(batch=2, height=128, width=128))
    grads = []
    for checkpointing in (False, True):
        model = detection_model(gradient_checkpointing=checkpointing).train()
        model.fpn1[1].eval()  # BatchNorm statistics would differ between the two runs
        out = model(**inputs)
        sum(m.sum() for m in out.feature_maps.values()).backward()
        grads.append(model.encoder.layer[0].attention.self.query.weight.grad.clone())
    assert torch.allclose(grads[0], grads[1], atol=1e-5)


def test_drop_path_is_identity_in_eval_and_random_in_training():
    model = detection_model(drop_path_rate=0.5)
    inputs = dict(pixel_values=random_image(batch=2, height=64, width=64))
    with torch.no_grad():
        first = model(**inputs).feature_maps["layer3"]
        assert torch.equal(first, model(**inputs).feature_maps["layer3"])
        model.train()
        torch.manual_seed(1)
        a = model(**inputs).feature_maps["layer3"]
        torch.manual_seed(2)
        b = model(**inputs).feature_maps["layer3"]
    assert not torch.allclose(a, b)


def test_loading_reports_missing_unexpected_and_mismatched_keys(tmp_path, caplog):
    source = HFLayoutLMv3Model(tiny_config()).eval()
    state = {f"layoutlmv3.{k}": v for k, v in source.state_dict().items()}
    state["classifier.weight"] = torch.zeros(3, 64)  # a task head: not the backbone's
    state["layoutlmv3.encoder.layer.9.output.dense.bias"] = torch.zeros(64)  # a deeper model's
    del state["layoutlmv3.encoder.layer.1.output.dense.bias"]
    state["layoutlmv3.pos_embed"] = torch.zeros(1, 50, 64)
    path = tmp_path / "weights.bin"
    torch.save(state, path)

    with caplog.at_level(logging.WARNING, logger="layoutlmv3.loading"):
        model = LayoutLMv3DetectionModel.from_pretrained(path, config=tiny_config())
    report = caplog.text
    assert (
        "Missing in the checkpoint (1" in report and "encoder.layer.1.output.dense.bias" in report
    )
    assert "Unexpected in the checkpoint (1" in report and "encoder.layer.9.output" in report
    assert "Not LayoutLMv3 weights (1 keys outside the prefix" in report
    assert "pos_embed: checkpoint (1, 50, 64) vs model (1, 197, 64)" in report
    loaded = model.encoder.layer[0].attention.self.query.weight
    assert torch.equal(loaded, source.encoder.layer[0].attention.self.query.weight)

    with pytest.raises(IncompatibleWeights, match="Shape mismatch"):
        LayoutLMv3DetectionModel.from_pretrained(path, config=tiny_config(), strict=True)


def test_checkpoint_of_another_model_is_named(tmp_path):
    path = tmp_path / "resnet.pth"
    torch.save({"model": {"backbone.res2.conv1.weight": torch.zeros(1)}}, path)
    with pytest.raises(IncompatibleWeights, match=r"resnet.pth: no LayoutLMv3 encoder weights"):
        LayoutLMv3DetectionModel.from_pretrained(path, config=tiny_config())


def test_unilm_detectron2_checkpoint_loads(tmp_path):
    source = detection_model()
    state = {f"backbone.bottom_up.backbone.{k}": v for k, v in source.state_dict().items()}
    state["roi_heads.box_predictor.0.cls_score.weight"] = torch.zeros(6, 4)
    path = tmp_path / "model_final.pth"
    torch.save({"model": state, "iteration": 10}, path)
    loaded = LayoutLMv3DetectionModel.from_pretrained(
        path, config=tiny_config(), detection=True, out_features=source.out_features
    )
    for name, value in source.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], value), name


class _Exploit:
    def __reduce__(self):
        return (print, ("pwned",))


def test_pickle_with_code_is_refused(tmp_path):
    path = tmp_path / "evil.bin"
    torch.save({"weight": _Exploit()}, path)
    with pytest.raises(ValueError, match=r"evil\.bin: not a weights-only torch checkpoint"):
        load_state_dict(path)


def test_transformers_machinery_saves_loads_and_checkpoints(tmp_path):
    """A transformers PreTrainedModel: save_pretrained → from_pretrained (detection kwargs to the
    constructor), and a hub folder into detection mode leaves only the pyramid to initialise."""
    import transformers

    from layoutlmv3 import LayoutLMv3DetectionModel

    model = detection_model().eval()
    assert isinstance(model, transformers.PreTrainedModel)
    model.save_pretrained(tmp_path / "saved")
    again = LayoutLMv3DetectionModel.from_pretrained(
        tmp_path / "saved", detection=True, out_features=model.out_features
    ).eval()
    for (name, a), b in zip(model.state_dict().items(), again.state_dict().values()):
        assert torch.equal(a, b), name
    hub = HFLayoutLMv3Model(tiny_config()).eval()
    hub.save_pretrained(tmp_path / "hub")
    loaded = LayoutLMv3DetectionModel.from_pretrained(
        tmp_path / "hub", detection=True, out_features=model.out_features
    )
    hub_state = hub.state_dict()
    for name, value in loaded.state_dict().items():
        if not name.startswith(("fpn1.", "fpn2.")):
            assert torch.equal(value, hub_state[name]), name
    loaded.gradient_checkpointing_enable({"use_reentrant": False})
    assert loaded.is_gradient_checkpointing
    assert all(layer.gradient_checkpointing for layer in loaded.encoder.layer)


def test_attention_dropout_key_overrides_the_checkpoint_config():
    from ditod.config import load_config
    from ditod.modeling.backbone import build_layoutlmv3_config

    base = ["MODEL.LAYOUTLMV3.CONFIG", "", "MODEL.LAYOUTLMV3.SIZE", "base"]
    config = Path(__file__).resolve().parents[1] / "configs/publaynet/cascade_layoutlmv3_image.yaml"
    assert build_layoutlmv3_config(load_config(config, base)).attention_probs_dropout_prob == 0.1
    off = load_config(config, [*base, "MODEL.LAYOUTLMV3.ATTENTION_DROPOUT", "0.0"])
    assert build_layoutlmv3_config(off).attention_probs_dropout_prob == 0.0


def attention_inputs(mask: str, batch=2, heads=3, length=70, dim=16, seed=0):
    generator = torch.Generator().manual_seed(seed)
    query, key, value = (torch.randn(batch, heads, length, dim, generator=generator) for _ in "qkv")
    if mask == "bias":  # the encoder's: (B, heads, L, L) in rows padded to 16, padding masked
        storage = torch.randn(batch, heads, length, 80, generator=generator)
        bias = storage[..., :length]
        bias[1, :, :, 60:] = torch.finfo(torch.float32).min
    elif mask == "keep":  # text padding only: (B, 1, 1, L) bool
        bias = torch.ones(batch, 1, 1, length, dtype=torch.bool)
        bias[1, ..., 60:] = False
    else:
        bias = None
    return query, key, value, bias


@pytest.mark.parametrize("mask", ["bias", "keep", "none"])
def test_blocked_attention_equals_sdpa(mask):
    """Blocks of 16 queries (the last one partial) give PyTorch's attention: in fp32 to rounding,
    in bf16 within bf16's error of the fp32 result."""
    query, key, value, bias = attention_inputs(mask)
    expected = torch.nn.functional.scaled_dot_product_attention(query, key, value, bias)
    got = blocked_attention(query, key, value, bias, block=16)
    assert got.shape == expected.shape and got.dtype == torch.float32
    assert (got - expected).abs().max().item() <= 1e-5
    half = [
        t.bfloat16() if t is not None and t.is_floating_point() else t
        for t in (query, key, value, bias)
    ]
    got = blocked_attention(*half, block=16)
    assert got.dtype == torch.bfloat16
    assert (got.float() - expected).abs().max().item() <= 0.05


def test_bf16_attention_through_blocked_attention_matches_the_fused_kernel():
    """``set_attention_query_block``: bf16 inference with text padding and both biases runs
    blocked attention (as close to fp32 as the fused kernel is), bf16 training too; fp32 never."""
    model = detection_model(bias=True)
    pixels = random_image(batch=2, height=128, width=96)
    text = text_inputs(batch=2, length=9)
    text["attention_mask"][1, 5:] = 0

    def maps(dtype=None):
        with torch.no_grad(), torch.autocast("cpu", torch.bfloat16, enabled=dtype is not None):
            return model(**text, pixel_values=pixels).feature_maps

    reference = maps()
    fused = maps(torch.bfloat16)
    model.set_attention_query_block(16)
    calls = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(
            modeling, "blocked_attention", lambda *a: calls.append(1) or blocked_attention(*a)
        )
        blocked = maps(torch.bfloat16)
        assert len(calls) == 4  # every layer
        assert all((maps()[name] == reference[name]).all() for name in reference)  # fp32
        model.train()
        maps(torch.bfloat16)
        model.eval()
        assert len(calls) == 8
    for name, expected in reference.items():
        fused_error = (fused[name].float() - expected).abs().max().item()
        blocked_error = (blocked[name].float() - expected).abs().max().item()
        assert blocked_error <= 1.5 * fused_error + 1e-3, (name, blocked_error, fused_error)


def test_attention_in_bf16_between_fp32_layers():
    """``set_attention_query_block(block, torch.bfloat16)`` (int8 inference's attention): the
    layers keep their dtype, the attention and its bias run in bf16 through blocked attention,
    and the maps stay as close to fp32 as bf16 attention under autocast allows."""
    model = detection_model(bias=True)
    pixels = random_image(batch=2, height=128, width=96)
    text = text_inputs(batch=2, length=9)
    text["attention_mask"][1, 5:] = 0
    with torch.no_grad():
        reference = model(**text, pixel_values=pixels).feature_maps
    model.set_attention_query_block(16, torch.bfloat16)
    seen = []

    def spy(query, key, value, bias, *args):
        seen.append((query.dtype, bias.dtype))
        return blocked_attention(query, key, value, bias, *args)

    with pytest.MonkeyPatch.context() as patch, torch.no_grad():
        patch.setattr(modeling, "blocked_attention", spy)
        got = model(**text, pixel_values=pixels).feature_maps
    assert seen == [(torch.bfloat16, torch.bfloat16)] * 4
    for name, expected in reference.items():
        assert got[name].dtype == torch.float32
        error = (got[name] - expected).abs().max().item()
        assert 0 < error <= 0.05 * expected.abs().max().item(), (name, error)
    model.set_attention_query_block(0)
    with torch.no_grad():
        again = model(**text, pixel_values=pixels).feature_maps
    assert all((again[name] == reference[name]).all() for name in reference)


def test_blocked_attention_gradients_equal_sdpas_and_dropout_applies():
    query, key, value, bias = attention_inputs("bias")
    grads = []
    for attend in (torch.nn.functional.scaled_dot_product_attention, blocked_attention):
        inputs = [t.clone().requires_grad_() for t in (query, key, value, bias)]
        attend(*inputs).pow(2).sum().backward()
        grads.append([t.grad for t in inputs])
    for expected, got in zip(*grads):
        assert (got - expected).abs().max().item() <= 1e-4 * (1 + expected.abs().max().item())
    assert blocked_attention(query, key, value, bias, 16, dropout_p=1.0).abs().max() == 0
    dropped = blocked_attention(query, key, value, bias, 16, dropout_p=0.3)
    assert (dropped - blocked_attention(query, key, value, bias, 16)).abs().max() > 0.1
