"""LayoutCheckpointer: hub weights into the detector, unilm/detector checkpoints, strict mode,
weights-only loading, atomic saves."""

import logging
import os

import pytest
import torch
import transformers
from detectron2.config import get_cfg
from detectron2.modeling import build_model

from ditod import LayoutCheckpointer, add_layoutlmv3_config
from layoutlmv3 import IncompatibleWeights
from layoutlmv3.loading import UnsafeCheckpoint

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = dict(
    hidden_size=96,
    num_hidden_layers=4,
    num_attention_heads=3,
    intermediate_size=192,
    coordinate_size=16,
    shape_size=16,
    vocab_size=300,
    input_size=224,
)


@pytest.fixture(scope="module")
def hub_folder(tmp_path_factory):
    """A tiny random transformers LayoutLMv3Model saved as the hub saves one."""
    folder = tmp_path_factory.mktemp("hub")
    torch.manual_seed(0)
    model = transformers.LayoutLMv3Model(transformers.LayoutLMv3Config(**TINY))
    model.save_pretrained(folder)
    return folder, model.state_dict()


def detector(config_folder, image_only=False, **overrides):
    cfg = get_cfg()
    add_layoutlmv3_config(cfg)
    cfg.merge_from_file(os.path.join(ROOT, "configs/tiny/cascade_layoutlmv3_tiny.yaml"))
    cfg.MODEL.LAYOUTLMV3.CONFIG = str(config_folder)
    cfg.MODEL.LAYOUTLMV3.IMAGE_ONLY = image_only
    if image_only:
        cfg.MODEL.LAYOUTLMV3.FUSION.TYPE = ""
    for key, value in overrides.items():
        setattr(cfg.MODEL.LAYOUTLMV3, key, value)
    return build_model(cfg)


@pytest.mark.parametrize("image_only", [False, True])
def test_hub_folder_loads_into_the_backbone_with_no_missing_keys(hub_folder, caplog, image_only):
    folder, reference = hub_folder
    model = detector(folder, image_only)
    with caplog.at_level(logging.INFO):
        LayoutCheckpointer(model).load(str(folder))
    assert "Missing in the checkpoint" not in caplog.text
    assert "Unexpected in the checkpoint" not in caplog.text
    # heads, FPN, pyramid and fusion are new by design, not missing
    new = caplog.text.split("New by design (")[1].splitlines()[0]
    for group in (
        "roi_heads.box_predictor.*",
        "proposal_generator.rpn_head.",
        "backbone.fpn_",
        "backbone.bottom_up.backbone.fpn1.* (9)",
        "backbone.bottom_up.backbone.fpn2.*",
    ):
        assert group in new, new
    assert ("backbone.bottom_up.fusions." in new) == (not image_only), new
    backbone = model.backbone.bottom_up.backbone.state_dict()
    compared = 0
    for key, value in reference.items():
        if key in backbone:
            assert torch.equal(backbone[key], value), key
            compared += 1
    assert compared >= 60 if not image_only else compared >= 50


def test_strict_mode_refuses_weights_of_another_size(hub_folder, tmp_path):
    folder, _ = hub_folder
    other = tmp_path / "other.json"
    other.write_text(
        transformers.LayoutLMv3Config(
            **{**TINY, "hidden_size": 48, "coordinate_size": 8, "shape_size": 8}
        ).to_json_string()
    )
    model = detector(other, STRICT_WEIGHTS=True)
    with pytest.raises(IncompatibleWeights, match=r"(?s)Shape mismatch.*STRICT_WEIGHTS"):
        LayoutCheckpointer(model, strict=True).load(str(folder))


def test_mismatch_is_reported_when_not_strict(hub_folder, tmp_path, caplog):
    folder, _ = hub_folder
    other = tmp_path / "other.json"
    other.write_text(transformers.LayoutLMv3Config(**{**TINY, "vocab_size": 500}).to_json_string())
    with caplog.at_level(logging.WARNING):
        LayoutCheckpointer(detector(other)).load(str(folder))
    assert (
        "embeddings.word_embeddings.weight: checkpoint (300, 96) vs model (500, 96)" in caplog.text
    )


def test_detector_checkpoint_round_trip_and_atomic_save(hub_folder, tmp_path, monkeypatch):
    folder, _ = hub_folder
    model = detector(folder)
    checkpointer = LayoutCheckpointer(model, str(tmp_path))
    checkpointer.save("model_a", iteration=3)
    saved = (tmp_path / "model_a.pth").read_bytes()
    assert (tmp_path / "last_checkpoint").read_text() == "model_a.pth"

    def disk_full(data, f):
        f.write(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", disk_full)
    with pytest.raises(OSError, match=r"No space left"):
        checkpointer.save("model_a", iteration=4)
    monkeypatch.undo()
    assert (tmp_path / "model_a.pth").read_bytes() == saved  # the previous file is intact
    assert (tmp_path / "last_checkpoint").read_text() == "model_a.pth"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last_checkpoint", "model_a.pth"]

    fresh = detector(folder)
    extra = LayoutCheckpointer(fresh, str(tmp_path)).resume_or_load("", resume=True)
    assert extra["iteration"] == 3
    for (name, a), b in zip(model.state_dict().items(), fresh.state_dict().values()):
        assert torch.equal(a, b), name


def test_pickle_with_code_is_refused(hub_folder, tmp_path):
    folder, _ = hub_folder
    evil = tmp_path / "evil.pth"
    torch.save({"model": {}, "payload": os.system}, evil)
    with pytest.raises(UnsafeCheckpoint, match=r"evil.pth: not a weights-only"):
        LayoutCheckpointer(detector(folder)).load(str(evil))


def test_missing_weights_path_is_clear(hub_folder):
    with pytest.raises(FileNotFoundError, match=r"MODEL.WEIGHTS: /no/such/dir does not exist"):
        LayoutCheckpointer(detector(hub_folder[0])).load("/no/such/dir")
