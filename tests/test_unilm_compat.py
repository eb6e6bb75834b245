"""unilm's LayoutLMv3 detectors load exactly, and the configs that claim their recipe match it.

The fixture ``fixtures/unilm_cascade_layoutlmv3_publaynet_keys.txt`` lists the state-dict names
and shapes of a detector built by unilm's own code (layoutlmv3/examples/object_detection,
``cascade_layoutlmv3.yaml``, base size, PubLayNet): their ``LayoutLMv3Encoder`` owns the pyramid
layers (``encoder.fpn1``, ``encoder.fpn2``), the model is image-only (no text embeddings), the
attention-bias tables are off and a mask head is present. Nothing here comes from this project's
model.
"""

import logging
from pathlib import Path

import pytest
import torch
from detectron2.modeling import build_model
from transformers import LayoutLMv3Config

from ditod import LayoutCheckpointer
from ditod.config import load_config
from ditod.modeling.backbone import LAYOUTLMV3_SIZES
from ditod.modeling.roi_align import MatmulROIAlign
from layoutlmv3 import IncompatibleWeights, LayoutLMv3DetectionModel

ROOT = Path(__file__).resolve().parents[1]
KEYS = Path(__file__).with_name("fixtures") / "unilm_cascade_layoutlmv3_publaynet_keys.txt"
PREFIX = "backbone.bottom_up.backbone."


def unilm_state() -> dict:
    """A state dict with unilm's names and shapes; every value distinct per tensor, in [2, 3)."""
    generator = torch.Generator().manual_seed(0)
    state = {}
    for line in KEYS.read_text().splitlines():
        name, shape = line.split(" ", 1)
        shape = tuple(int(s) for s in shape.strip("()").replace(" ", "").split(",") if s)
        if name.endswith("num_batches_tracked"):
            state[name] = torch.tensor(7)
        else:
            state[name] = torch.rand(shape, generator=generator) + 2.0
    return state


def ours(unilm_name: str) -> str:
    return unilm_name.replace(PREFIX + "encoder.fpn", PREFIX + "fpn")


@pytest.fixture(scope="module")
def publaynet_detector():
    cfg = load_config(ROOT / "configs/publaynet/cascade_layoutlmv3_image.yaml")
    cfg.MODEL.LAYOUTLMV3.CONFIG = ""  # the base preset; no hub download here
    cfg.MODEL.DEVICE = "cpu"
    return build_model(cfg).eval()


def test_fixture_is_unilms_layout_not_ours():
    names = [line.split(" ")[0] for line in KEYS.read_text().splitlines()]
    assert any(n.startswith(PREFIX + "encoder.fpn1.") for n in names)
    assert not any(n.startswith(PREFIX + "fpn1.") for n in names)
    assert any(n.startswith("roi_heads.mask_head.") for n in names)


def test_unilm_detector_checkpoint_loads_every_tensor(publaynet_detector, tmp_path, caplog):
    state = unilm_state()
    path = tmp_path / "model_final.pth"
    torch.save({"model": state, "iteration": 60000}, path)
    with caplog.at_level(logging.INFO):
        LayoutCheckpointer(publaynet_detector, complete=True).load(str(path))
    loaded = publaynet_detector.state_dict()
    assert len(loaded) == len(state)
    for name, value in state.items():
        assert torch.equal(loaded[ours(name)], value), name
    assert "11 keys renamed from unilm's layout" in caplog.text
    assert "Missing" not in caplog.text and "Shape mismatch" not in caplog.text
    # the box and mask poolers' RoIAlign (parameter-free) is ours, with unilm's settings
    heads = publaynet_detector.roi_heads
    for pooler in (heads.box_pooler, heads.mask_pooler):
        assert [type(level) for level in pooler.level_poolers] == [MatmulROIAlign] * 4
        assert all(level.aligned and level.sampling_ratio == 0 for level in pooler.level_poolers)


def test_pyramid_left_out_is_refused_in_complete_mode(publaynet_detector, tmp_path):
    """The old failure: encoder.fpn* unmatched left fpn1/fpn2 random and inference ran."""
    state = {k: v for k, v in unilm_state().items() if ".encoder.fpn" not in k}
    path = tmp_path / "no_pyramid.pth"
    torch.save({"model": state}, path)
    with pytest.raises(
        IncompatibleWeights,
        match=r"(?s)leaves 10 model tensors.*fpn1\.0\.weight.*"
        r"ALLOW_RANDOM_INIT",
    ):
        LayoutCheckpointer(publaynet_detector, complete=True).load(str(path))


def test_model_from_pretrained_reads_a_unilm_detector(tmp_path, caplog):
    state = unilm_state()
    path = tmp_path / "model_final.pth"
    torch.save({"model": state}, path)
    config = LayoutLMv3Config(
        **LAYOUTLMV3_SIZES["base"],
        text_embed=False,
        has_relative_attention_bias=False,
        has_spatial_attention_bias=False,
    )
    with caplog.at_level(logging.INFO):
        model = LayoutLMv3DetectionModel.from_pretrained(
            path, config=config, strict=True, detection=True
        )
    assert torch.equal(model.fpn1[0].weight, state[PREFIX + "encoder.fpn1.0.weight"])
    assert torch.equal(model.fpn1[1].running_var, state[PREFIX + "encoder.fpn1.1.running_var"])
    assert torch.equal(model.fpn2[0].bias, state[PREFIX + "encoder.fpn2.0.bias"])
    assert "Missing" not in caplog.text


# unilm's cascade_layoutlmv3.yaml (PubLayNet), the keys that shape training and the model, as
# published; paths and their backbone's name/IMG_SIZE/POS_TYPE (fixed by LayoutLMv3) left out.
UNILM_YAML = {
    "MODEL.MASK_ON": True,
    "MODEL.IMAGE_ONLY": True,
    "MODEL.META_ARCHITECTURE": "VLGeneralizedRCNN",
    "MODEL.PIXEL_MEAN": [127.5, 127.5, 127.5],
    "MODEL.PIXEL_STD": [127.5, 127.5, 127.5],
    "MODEL.VIT.OUT_FEATURES": ["layer3", "layer5", "layer7", "layer11"],
    "MODEL.VIT.DROP_PATH": 0.1,
    "MODEL.ROI_HEADS.NAME": "CascadeROIHeads",
    "MODEL.ROI_HEADS.IN_FEATURES": ["p2", "p3", "p4", "p5"],
    "MODEL.ROI_HEADS.NUM_CLASSES": 5,
    "MODEL.ROI_BOX_HEAD.CLS_AGNOSTIC_BBOX_REG": True,
    "MODEL.ROI_BOX_HEAD.NAME": "FastRCNNConvFCHead",
    "MODEL.ROI_BOX_HEAD.NUM_FC": 2,
    "MODEL.ROI_BOX_HEAD.POOLER_RESOLUTION": 7,
    "MODEL.ROI_MASK_HEAD.NAME": "MaskRCNNConvUpsampleHead",
    "MODEL.ROI_MASK_HEAD.NUM_CONV": 4,
    "MODEL.ROI_MASK_HEAD.POOLER_RESOLUTION": 14,
    "MODEL.FPN.IN_FEATURES": ["layer3", "layer5", "layer7", "layer11"],
    "MODEL.ANCHOR_GENERATOR.SIZES": [[32], [64], [128], [256], [512]],
    "MODEL.ANCHOR_GENERATOR.ASPECT_RATIOS": [[0.5, 1.0, 2.0]],
    "MODEL.RPN.IN_FEATURES": ["p2", "p3", "p4", "p5", "p6"],
    "MODEL.RPN.PRE_NMS_TOPK_TRAIN": 2000,
    "MODEL.RPN.PRE_NMS_TOPK_TEST": 1000,
    "MODEL.RPN.POST_NMS_TOPK_TRAIN": 2000,
    "MODEL.RPN.POST_NMS_TOPK_TEST": 1000,
    "SOLVER.GRADIENT_ACCUMULATION_STEPS": 1,
    "SOLVER.BASE_LR": 0.0002,
    "SOLVER.WARMUP_ITERS": 1000,
    "SOLVER.IMS_PER_BATCH": 32,
    "SOLVER.MAX_ITER": 60000,
    "SOLVER.CHECKPOINT_PERIOD": 2000,
    "SOLVER.LR_SCHEDULER_NAME": "WarmupCosineLR",
    "SOLVER.AMP.ENABLED": True,
    "SOLVER.OPTIMIZER": "ADAMW",
    "SOLVER.BACKBONE_MULTIPLIER": 1.0,
    "SOLVER.CLIP_GRADIENTS.ENABLED": True,
    "SOLVER.CLIP_GRADIENTS.CLIP_TYPE": "full_model",
    "SOLVER.CLIP_GRADIENTS.CLIP_VALUE": 1.0,
    "SOLVER.CLIP_GRADIENTS.NORM_TYPE": 2.0,
    "SOLVER.WARMUP_FACTOR": 0.01,
    "SOLVER.WEIGHT_DECAY": 0.05,
    "TEST.EVAL_PERIOD": 2000,
    "INPUT.CROP.ENABLED": True,
    "INPUT.CROP.TYPE": "absolute_range",
    "INPUT.CROP.SIZE": [384, 600],
    "INPUT.MIN_SIZE_TRAIN": [480, 512, 544, 576, 608, 640, 672, 704, 736, 768, 800],
    "INPUT.FORMAT": "RGB",
    "DATALOADER.FILTER_EMPTY_ANNOTATIONS": False,
    "AUG.DETR": True,
    "SEED": 42,
}
# Their keys under our names, and where their code overrides their YAML (their
# backbone builder never passes DROP_PATH; their mapper disables flip and crop for LayoutLMv3).
RENAMED = {
    "MODEL.IMAGE_ONLY": "MODEL.LAYOUTLMV3.IMAGE_ONLY",
    "MODEL.VIT.OUT_FEATURES": "MODEL.LAYOUTLMV3.OUT_FEATURES",
    "MODEL.VIT.DROP_PATH": "MODEL.LAYOUTLMV3.DROP_PATH",
    "SOLVER.GRADIENT_ACCUMULATION_STEPS": "SOLVER.ACCUMULATION_STEPS",
}
AS_THEIR_CODE_RUNS = {
    "MODEL.VIT.DROP_PATH": 0.0,
    "INPUT.CROP.ENABLED": False,
    "INPUT.CROP.TYPE": None,
    "INPUT.CROP.SIZE": None,
    "AUG.DETR": False,
}


def _get(cfg, key):
    for part in key.split("."):
        cfg = cfg[part]
    return cfg


def _plain(value):
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


@pytest.mark.parametrize("config", ["publaynet/cascade_layoutlmv3_image.yaml"])
def test_config_claiming_unilms_recipe_matches_it_key_by_key(config):
    cfg = load_config(ROOT / "configs" / config)
    differences = []
    for key, theirs in UNILM_YAML.items():
        expected = AS_THEIR_CODE_RUNS.get(key, theirs)
        if expected is None:  # a key their code never reads
            continue
        value = _plain(_get(cfg, RENAMED.get(key, key)))
        if value != _plain(expected):
            differences.append(f"{key}: {value} vs unilm {expected}")
    assert cfg.INPUT.RANDOM_FLIP == "none"
    assert not differences, differences
