"""Optimizer parameter groups and the training step (accumulation, AMP, clipping, NaN guard)."""

import pytest
import torch
from torch import nn

from ditod.engine.optimizer import optimizer_param_groups
from ditod.engine.trainer import LayoutTrainStep, SkipSampler
from layoutlmv3 import LayoutLMv3DetectionModel
from layoutlmv3.modeling import LayoutLMv3Config


class Detector(nn.Module):
    """The parameter layout of the detector: backbone.bottom_up.backbone = LayoutLMv3."""

    def __init__(self):
        super().__init__()
        config = LayoutLMv3Config(
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=64,
            coordinate_size=4,
            shape_size=8,
            vocab_size=50,
        )
        self.backbone = nn.Module()
        self.backbone.bottom_up = nn.Module()
        layers = ["layer0", "layer0", "layer1", "layer1"]
        self.backbone.bottom_up.backbone = LayoutLMv3DetectionModel(
            config, True, out_features=layers
        )
        self.head = nn.Linear(32, 4)


def groups_by_param(groups):
    return {id(p): (g["lr"], g["weight_decay"]) for g in groups for p in g["params"]}


def test_no_decay_on_norms_biases_embeddings_and_layer_decay():
    model = Detector()
    groups = optimizer_param_groups(model, 1.0, 0.05, backbone_multiplier=0.5, layer_decay=0.5)
    lookup = groups_by_param(groups)
    named = dict(model.named_parameters())
    prefix = "backbone.bottom_up.backbone."
    for name in (
        "cls_token",
        "pos_embed",
        "norm.weight",
        "LayerNorm.bias",
        "embeddings.word_embeddings.weight",
        "encoder.layer.0.output.LayerNorm.weight",
        "encoder.layer.1.attention.self.query.bias",
        "fpn1.1.weight",
    ):
        assert lookup[id(named[prefix + name])][1] == 0.0, name
    assert lookup[id(named["head.weight"])] == (1.0, 0.05)
    assert lookup[id(named["head.bias"])] == (1.0, 0.0)
    # depth: embeddings 0, layer i → i + 1, pyramid L + 1 = 3; lr = 0.5 × 0.5 ** (3 - depth)
    assert lookup[id(named[prefix + "patch_embed.proj.weight"])] == (0.5 * 0.5**3, 0.05)
    assert lookup[id(named[prefix + "encoder.layer.0.attention.self.query.weight"])][0] == 0.5**3
    assert lookup[id(named[prefix + "encoder.layer.1.intermediate.dense.weight"])][0] == 0.5**2
    assert lookup[id(named[prefix + "fpn1.0.weight"])][0] == 0.5
    assert len(lookup) == len(list(model.parameters()))


class Regression(nn.Module):
    """Batches are lists of {"x": (D,), "y": ()}; loss = mean squared error over the batch."""

    def __init__(self, nan_at=None):
        super().__init__()
        self.linear = nn.Linear(4, 1)
        self.nan_at = nan_at
        self.calls = 0

    def forward(self, batch):
        self.calls += 1
        x = torch.stack([b["x"] for b in batch])
        y = torch.stack([b["y"] for b in batch])
        loss = (self.linear(x).squeeze(-1) - y).square().mean()
        bad = torch.tensor(float("nan") if self.calls == self.nan_at else 0.0)
        return {"loss_fit": loss, "loss_extra": bad}


def samples(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [{"x": torch.randn(4, generator=g), "y": torch.randn((), generator=g)} for _ in range(n)]


def one_step(model, loader, **kwargs):
    from detectron2.utils.events import EventStorage

    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    step = LayoutTrainStep(model, loader, optimizer, **kwargs)
    with EventStorage(0):
        step.iter = 0
        step.run_step()
    return model


def test_accumulation_equals_one_big_batch():
    data = samples(4)
    torch.manual_seed(0)
    big = one_step(Regression(), [data], accumulation_steps=1)
    torch.manual_seed(0)
    accumulated = one_step(Regression(), [data[:2], data[2:]], accumulation_steps=2)
    assert accumulated.calls == 2
    for a, b in zip(big.parameters(), accumulated.parameters()):
        assert torch.allclose(a, b, atol=1e-6)


def test_full_model_clipping_bounds_the_update():
    data = [{"x": torch.full((4,), 100.0), "y": torch.tensor(-1000.0)}]
    torch.manual_seed(0)
    before = [p.detach().clone() for p in Regression().parameters()]
    torch.manual_seed(0)
    model = one_step(Regression(), [data], clip_norm=1.0)
    moved = torch.cat([(p - b).flatten() for p, b in zip(model.parameters(), before)])
    assert moved.norm().item() == pytest.approx(0.1, rel=1e-4)  # lr × clip norm


def test_nan_loss_names_the_term_and_the_iteration():
    with pytest.raises(FloatingPointError, match=r"loss 'loss_extra' is nan at iteration 0"):
        one_step(Regression(nan_at=1), [samples(2)])


def test_bfloat16_autocast_on_cpu_and_float16_refused():
    one_step(Regression(), [samples(2)], amp_dtype=torch.bfloat16)
    with pytest.raises(ValueError, match="float16 needs a CUDA device"):
        one_step(Regression(), [samples(2)], amp_dtype=torch.float16)


def test_skip_sampler_resumes_the_stream():
    from detectron2.data.samplers import TrainingSampler

    stream = iter(TrainingSampler(10, seed=3))
    full = [next(stream) for _ in range(25)]
    resumed = iter(SkipSampler(TrainingSampler(10, seed=3), skip=12))
    assert [next(resumed) for _ in range(13)] == full[12:]


@pytest.mark.parametrize("name", ["ADAMW", "SGD"])
def test_optimizer_is_fused_and_steps_as_the_per_parameter_loop(name):
    from detectron2.config import get_cfg

    from ditod.config import add_layoutlmv3_config
    from ditod.engine.optimizer import build_optimizer

    cfg = get_cfg()
    add_layoutlmv3_config(cfg)
    cfg.SOLVER.OPTIMIZER, cfg.SOLVER.BASE_LR, cfg.SOLVER.WEIGHT_DECAY = name, 1e-2, 0.05
    torch.manual_seed(0)
    model = Detector()
    reference = Detector()
    reference.load_state_dict(model.state_dict())
    fused = build_optimizer(cfg, model)
    assert all(group["fused"] for group in fused.param_groups)
    groups = optimizer_param_groups(reference, 1e-2, 0.05, 1.0, 1.0)
    if name == "ADAMW":
        looped = torch.optim.AdamW(groups, lr=1e-2, foreach=False)
    else:
        looped = torch.optim.SGD(groups, lr=1e-2, momentum=cfg.SOLVER.MOMENTUM, foreach=False)
    for step in range(3):
        for m in (model, reference):
            torch.manual_seed(step)
            for p in m.parameters():
                p.grad = torch.randn_like(p)
        fused.step()
        looped.step()
    for a, b in zip(model.parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
