"""TEST.PRECISION: what ``auto`` picks for which CPU, the fp32 modules under bf16, and bf16 / int8
detections that agree with fp32 on a briefly trained tiny detector."""

import os
import subprocess
import sys

import pytest
import torch
from conftest import write_rectangle_coco
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import Boxes, Instances, pairwise_iou
from detectron2.utils.env import seed_all_rng
from test_inference import CLASSES, tiny_cfg

from ditod import LayoutCheckpointer, LayoutTrainer
from ditod.data.datasets import register_layout_dataset
from ditod.deploy.predictor import LayoutPredictor
from ditod.modeling import precision as precision_module
from ditod.modeling.precision import choose_precision, cpu_kernel_flags, run_in_fp32
from layoutlmv3 import modeling

SHOWN = 0.5  # tools/infer.py's score threshold: the boxes a user sees
NO_UNITS = {
    **dict.fromkeys(precision_module.KERNEL_FLAGS, False),
    "avx2": True,
    "capability": "AVX2",
}


@pytest.mark.parametrize(
    ("flags", "probe", "chosen", "reason"),
    [
        ({}, 9.0, "fp32", "no bf16 matrix units and int8 does not pay"),
        ({"avx512_bf16": True}, 2.4, "bf16", "has avx512_bf16; a bf16 linear layer ran 2.4x"),
        ({"amx_bf16": True, "avx512_bf16": True}, 7.0, "bf16", "has amx_bf16+avx512_bf16"),
        ({"avx512_bf16": True}, 0.02, "fp32", "ran only 0.02x fp32 (a capped ISA?)"),
        ({"avx512_vnni": True}, 3.0, "int8", "has avx512_vnni and no bf16 units"),
        ({"avx512_vnni": True}, 1.0, "fp32", "int8 does not pay"),
    ],
    ids=["avx2", "zen4", "amx", "capped", "vnni", "vnni_slow"],
)
def test_auto_picks_by_the_cpu_units_and_the_probe(monkeypatch, flags, probe, chosen, reason):
    probed = []
    monkeypatch.setattr(precision_module, "cpu_kernel_flags", lambda: NO_UNITS | flags)
    monkeypatch.setattr(precision_module, "_probe_speedup", lambda p: probed.append(p) or probe)
    choice = choose_precision("auto", "cpu")
    assert choice.precision == chosen and reason in choice.reason, choice
    if not flags:
        assert probed == []  # nothing to probe without the units


@pytest.mark.parametrize(
    ("setting", "device", "probe", "block", "reason"),
    [
        (-1, "cpu", 2.1, 64, "blocks of 64 queries: 2.1x PyTorch's fused bf16 attention"),
        (-1, "cpu", 0.8, 0, "fused attention (blocked ran 0.80x it"),
        (-1, "cuda", 9.0, 0, "fused attention (not a CPU)"),
        (0, "cpu", 9.0, 0, "set by MODEL.LAYOUTLMV3.ATTENTION_QUERY_BLOCK"),
        (
            128,
            "cpu",
            0.1,
            128,
            "blocks of 128 queries (set by MODEL.LAYOUTLMV3.ATTENTION_QUERY_BLOCK)",
        ),
    ],
    ids=["probe-blocked", "probe-fused", "cuda", "fused", "forced"],
)
def test_attention_kernel_for_bf16(monkeypatch, setting, device, probe, block, reason):
    probed = []
    monkeypatch.setattr(
        precision_module, "_probe_attention_speedup", lambda b: probed.append(b) or probe
    )
    chosen, why = precision_module.choose_attention_block(setting, device)
    assert chosen == block and reason in why, why
    assert probed == ([64] if setting == -1 and device == "cpu" else [])


@pytest.mark.parametrize(
    ("setting", "flags", "probe", "dtype", "reason"),
    [
        ("auto", {"avx512_bf16": True}, 2.4, torch.bfloat16, "bf16 attention (the CPU has avx5"),
        ("auto", {"avx512_vnni": True}, 9.0, None, "fp32 (the CPU has no bf16 matrix units)"),
        ("auto", {"avx512_bf16": True}, 0.02, None, "avx512_bf16 but a bf16 linear layer ran"),
        ("bf16", {}, 9.0, torch.bfloat16, "bf16 attention (set by TEST.INT8_ATTENTION)"),
        ("fp32", {"amx_bf16": True}, 9.0, None, "attention in fp32 (set by TEST.INT8_ATTENTION)"),
    ],
    ids=["zen4", "vnni-only", "capped", "bf16", "fp32"],
)
def test_attention_between_int8_layers(monkeypatch, setting, flags, probe, dtype, reason):
    monkeypatch.setattr(precision_module, "cpu_kernel_flags", lambda: NO_UNITS | flags)
    monkeypatch.setattr(precision_module, "_probe_speedup", lambda p: probe)
    monkeypatch.setattr(precision_module, "_probe_attention_speedup", lambda b: 2.0)
    chosen, block, why = precision_module.choose_int8_attention(setting, -1)
    assert chosen == dtype and reason in why, why
    assert block == (64 if dtype else 0)
    with pytest.raises(ValueError, match=r"TEST.INT8_ATTENTION 'int8' is not one of auto, bf16"):
        precision_module.choose_int8_attention("int8", -1)


def test_bf16_training_runs_the_chosen_attention(monkeypatch, tmp_path, caplog):
    """``SOLVER.AMP`` bf16: the trainer sets the probe's attention kernel on the backbone and
    trains through it (finite losses); fp32 training keeps the fused kernel."""
    monkeypatch.setattr(precision_module, "_probe_attention_speedup", lambda block: 2.0)
    coco_json = write_rectangle_coco(tmp_path, num_images=2)
    register_layout_dataset("bf16_training_pages", coco_json, tmp_path / "images")
    cfg = tiny_cfg()
    cfg.DATASETS.TRAIN = cfg.DATASETS.TEST = ("bf16_training_pages",)
    cfg.SOLVER.MAX_ITER = 3
    cfg.SOLVER.IMS_PER_BATCH = 1
    cfg.TEST.EVAL_PERIOD = 0
    cfg.OUTPUT_DIR = str(tmp_path / "train")
    cfg.SOLVER.AMP.ENABLED, cfg.SOLVER.AMP.DTYPE = True, "bfloat16"
    try:
        with caplog.at_level("INFO", logger="ditod.engine.trainer"):
            trainer = LayoutTrainer(cfg)
        encoder = trainer.model.backbone.bottom_up.backbone.encoder
        assert {layer.attention.self.query_block for layer in encoder.layer} == {64}
        assert "bf16 training: attention in blocks of 64 queries: 2.0x" in caplog.text
        calls = []
        blocked = modeling.blocked_attention
        monkeypatch.setattr(
            modeling, "blocked_attention", lambda *a: calls.append(1) or blocked(*a)
        )
        trainer.train()
        assert len(calls) == 3 * len(encoder.layer)
        assert torch.isfinite(torch.tensor(trainer.storage.history("total_loss").values())).all()
        cfg.SOLVER.AMP.ENABLED = False
        encoder = LayoutTrainer(cfg).model.backbone.bottom_up.backbone.encoder
        assert {layer.attention.self.query_block for layer in encoder.layer} == {0}
    finally:
        DatasetCatalog.remove("bf16_training_pages")
        MetadataCatalog.remove("bf16_training_pages")


def test_speed_probe_is_not_decided_by_a_burst_of_load():
    """A candidate twice as fast as its baseline is found so even when a burst of load (another
    process starting) slows every call for a while: both are timed in turn and compared at their
    fastest. Timing the baseline's calls and then the candidate's (medians of 5, as the probe did
    before) puts the burst on the candidate alone here and finds it 0.4x: bf16 refused on a CPU
    where it runs twice as fast, as a demo run beside a test run once got."""
    import time

    calls = []

    def sleeper(seconds):
        def run():
            calls.append(1)
            burst = 7 <= len(calls) <= 12
            time.sleep(seconds + (0.008 if burst else 0))

        return run

    speedup = precision_module.timed_speedup(sleeper(0.004), sleeper(0.002))
    assert 1.5 < speedup < 2.5, speedup


def test_attention_probe_measures_both_kernels():
    assert 0.05 < precision_module._probe_attention_speedup(64) < 50


def test_explicit_and_wrong_settings():
    assert choose_precision("int8", "cpu").precision == "int8"
    assert choose_precision("fp32", "cuda").reason == "set by TEST.PRECISION"
    with pytest.raises(ValueError, match=r"TEST\.PRECISION 'fp16' is not one of auto, fp32"):
        choose_precision("fp16", "cpu")
    with pytest.raises(ValueError, match=r"int8 runs on the CPU; on CUDA use bf16 or auto"):
        choose_precision("int8", "cuda:0")


def test_auto_never_picks_bf16_under_an_avx2_cap():
    """With oneDNN capped to AVX2 a bf16 matmul runs on a slow fallback, whatever the CPU
    reports: the probe must see it (on a CPU without bf16 units auto never picks bf16 anyway)."""
    code = (
        "from ditod.modeling.precision import choose_precision\n"
        "print(choose_precision('auto', 'cpu').precision)"
    )
    env = {**os.environ, "ONEDNN_MAX_CPU_ISA": "AVX2"}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() in ("fp32", "int8")


def test_cpu_kernel_flags_name_torchs_capability():
    flags = cpu_kernel_flags()
    assert flags["capability"] == torch.backends.cpu.get_cpu_capability()
    assert set(precision_module.KERNEL_FLAGS) <= set(flags)


def test_fp32_module_computes_in_fp32_under_autocast():
    linear = torch.nn.Linear(64, 64)
    x = torch.randn(8, 64)
    state = {k: v.clone() for k, v in linear.state_dict().items()}
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert linear(x).dtype == torch.bfloat16
        run_in_fp32(linear)
        out = linear(x.bfloat16())
    assert out.dtype == torch.float32
    assert torch.allclose(out, torch.nn.functional.linear(x.bfloat16().float(), *state.values()))
    assert list(linear.state_dict()) == list(state)


@pytest.fixture(scope="module")
def trained_tiny(tmp_path_factory):
    """The tiny image-only detector after 150 iterations on rectangle pages, and its pages."""
    root = tmp_path_factory.mktemp("precision")
    coco_json = write_rectangle_coco(root, num_images=8)
    name = "precision_pages"
    register_layout_dataset(name, coco_json, root / "images")
    cfg = tiny_cfg()
    cfg.DATASETS.TRAIN = cfg.DATASETS.TEST = (name,)
    cfg.SOLVER.MAX_ITER = 150
    cfg.SOLVER.IMS_PER_BATCH = 2
    cfg.SOLVER.CHECKPOINT_PERIOD = 1000
    cfg.TEST.EVAL_PERIOD = 0
    cfg.OUTPUT_DIR = str(root / "train")
    seed_all_rng(3)
    trainer = LayoutTrainer(cfg)
    trainer.train()
    LayoutCheckpointer(trainer.model, cfg.OUTPUT_DIR, class_names=CLASSES).save("model_final")
    cfg.MODEL.WEIGHTS = str(root / "train" / "model_final.pth")
    cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST = SHOWN
    yield cfg, DatasetCatalog.get(name)
    DatasetCatalog.remove(name)
    MetadataCatalog.remove(name)


def detect(cfg, precision, pages, overrides=()) -> list[Instances]:
    cfg = cfg.clone()
    cfg.TEST.PRECISION = precision
    cfg.merge_from_list(list(overrides))
    predictor = LayoutPredictor(cfg)
    assert predictor.precision.precision == precision
    return [predictor([predictor.map_page(page["file_name"])])[0] for page in pages]


def found_and_false(pages: list[dict], detections: list[Instances]) -> tuple[int, int]:
    """Blocks of the pages' truth found (a detection of its class, IoU >= 0.5) and detections
    that match no block: what the overlays show a user."""
    found = false = 0
    for page, shown in zip(pages, detections):
        truth = torch.tensor(
            [[x, y, x + w, y + h] for x, y, w, h in (a["bbox"] for a in page["annotations"])]
        )
        classes = torch.tensor([a["category_id"] for a in page["annotations"]])
        hit = (pairwise_iou(Boxes(truth), shown.pred_boxes) >= 0.5) & (
            classes[:, None] == shown.pred_classes[None, :]
        )
        found += int(hit.any(1).sum())
        false += int((~hit.any(0)).sum())
    return found, false


@pytest.mark.slow
@pytest.mark.parametrize(
    ("precision", "overrides"),
    [
        ("bf16", ["MODEL.LAYOUTLMV3.ATTENTION_QUERY_BLOCK", 0]),
        ("bf16", ["MODEL.LAYOUTLMV3.ATTENTION_QUERY_BLOCK", 64]),
        ("int8", ["TEST.INT8_ATTENTION", "fp32"]),
        ("int8", ["TEST.INT8_ATTENTION", "bf16", "MODEL.LAYOUTLMV3.ATTENTION_QUERY_BLOCK", 64]),
    ],
    ids=["bf16-fused-attention", "bf16-blocked-attention", "int8", "int8-bf16-attention"],
)
def test_reduced_precision_shows_what_fp32_shows(trained_tiny, precision, overrides):
    """On the boxes a user sees (score >= 0.5), bf16 (either attention kernel) / int8 (fp32 or
    bf16 attention) find the blocks fp32 finds and show no more false boxes, give or take one: a
    box at the edge of the NMS overlap may merge with its neighbour in one precision and not in
    the other."""
    cfg, pages = trained_tiny
    reference = found_and_false(pages, detect(cfg, "fp32", pages))
    reduced = found_and_false(pages, detect(cfg, precision, pages, overrides))
    assert reference[0] >= len(pages)  # the model finds blocks
    assert reduced[0] >= reference[0] - 1 and reduced[1] <= reference[1] + 1, (reduced, reference)


def test_bf16_runs_the_pyramid_outputs_in_fp32_and_the_rest_in_bf16():
    from detectron2.modeling import build_model

    from ditod.modeling.precision import apply_inference_precision

    cfg = tiny_cfg()
    cfg.TEST.PRECISION = "bf16"
    torch.manual_seed(0)
    model, choice = apply_inference_precision(build_model(cfg).eval(), cfg)
    assert choice.precision == "bf16" and model.autocast_dtype == torch.bfloat16
    seen = {}
    model.backbone.register_forward_hook(lambda m, i, out: seen.update(out))
    linear = model.backbone.bottom_up.backbone.encoder.layer[0].intermediate.dense
    linear.register_forward_hook(lambda m, i, out: seen.update(layer0=out))
    with torch.no_grad():
        (result,) = model([{"image": torch.rand(3, 160, 224) * 255}])
    assert {name: seen[name].dtype for name in ("p2", "p3", "p4", "p5")} == dict.fromkeys(
        ("p2", "p3", "p4", "p5"), torch.float32
    )
    assert seen["layer0"].dtype == torch.bfloat16
    instances = result["instances"]
    assert instances.scores.dtype == instances.pred_boxes.tensor.dtype == torch.float32

    cfg.TEST.FP32_MODULES = ["backbone.fpn_output9"]
    with pytest.raises(ValueError, match=r"TEST\.FP32_MODULES: the model has no module "):
        apply_inference_precision(build_model(cfg).eval(), cfg)
