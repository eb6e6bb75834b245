"""The text-fusion variants at detector level (issue 15): text pooled at the box head
(``FUSION.BOX_HEAD``, ``LayoutCascadeROIHeads``) against a reference RoIAlign, starting as the
image-only box head and learning; SE and the mean reduction through a whole detector and its
ONNX export."""

import json

import pytest
import torch
import torchvision
from detection_match import assert_same_detections as match_detections
from detection_match import detections_of
from detectron2.config import get_cfg
from detectron2.modeling import build_model
from detectron2.modeling.poolers import ROIPooler
from detectron2.structures import Boxes
from detectron2.utils.events import EventStorage
from test_export import assert_onnx_equals_eager

from ditod import add_layoutlmv3_config
from ditod.data.mapper import LayoutDatasetMapper
from ditod.modeling.roi_heads import LayoutCascadeROIHeads, TextBoxPooler

CONFIG = "configs/tiny/cascade_layoutlmv3_tiny.yaml"


def text_cfg(tokenizer, **fusion):
    cfg = get_cfg()
    add_layoutlmv3_config(cfg)
    cfg.merge_from_file(CONFIG)
    cfg.MODEL.ROI_HEADS.NUM_CLASSES = 2
    cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST = 0.0
    cfg.MODEL.LAYOUTLMV3.TEXT.TOKENIZER = str(tokenizer)
    for key, value in fusion.items():
        setattr(cfg.MODEL.LAYOUTLMV3.FUSION, key, value)
    if fusion.get("BOX_HEAD"):
        cfg.MODEL.ROI_HEADS.NAME = "LayoutCascadeROIHeads"
    return cfg


def build(cfg, seed=0):
    torch.manual_seed(seed)
    model = build_model(cfg)
    for parameter in model.roi_heads.parameters():  # scores that differ from box to box
        if parameter.dim() > 1:
            torch.nn.init.normal_(parameter, std=0.05)
    return model


def test_box_head_text_starts_as_the_image_only_box_head(bpe_folder, text_pages):
    plain = build(text_cfg(bpe_folder)).eval()
    cfg = text_cfg(bpe_folder, BOX_HEAD=True)
    with_text = build_model(cfg).eval()
    assert isinstance(with_text.roi_heads, LayoutCascadeROIHeads)
    missing, unexpected = with_text.load_state_dict(plain.state_dict(), strict=False)
    project = ["roi_heads.box_pooler.project.bias", "roi_heads.box_pooler.project.weight"]
    assert sorted(missing) == project and not unexpected
    page = LayoutDatasetMapper(cfg, is_train=False)(text_pages[0])
    with torch.no_grad():
        expected = plain.inference([page], do_postprocess=False)[0]
        got = with_text.inference([page], do_postprocess=False)[0]
    assert len(expected) > 10
    match_detections(
        detections_of(got),
        detections_of(expected),
        box_atol=1e-3,
        score_atol=1e-5,
        cap=cfg.TEST.DETECTIONS_PER_IMAGE,
    )


def test_text_box_pooler_equals_roialign_of_the_text_map():
    generator = torch.Generator().manual_seed(0)
    levels = [torch.randn(2, 8, 64 // s, 48 // s, generator=generator) for s in (4, 8, 16, 32)]
    text_map = torch.randn(2, 12, 2, 2, generator=generator)  # stride 32 of a 64×48 page
    image_pooler = ROIPooler(7, (1 / 4, 1 / 8, 1 / 16, 1 / 32), 0, "ROIAlignV2")
    pooler = TextBoxPooler(image_pooler, ROIPooler(7, (1 / 32,), 0, "ROIAlignV2"), 12, 8)
    torch.nn.init.normal_(pooler.project.weight, generator=generator)
    boxes = [
        Boxes(torch.tensor([[2.0, 3.0, 40.0, 20.0], [0.0, 0.0, 48.0, 64.0]])),
        Boxes(torch.tensor([[10.0, 30.0, 30.0, 60.0]])),
    ]
    got = pooler([*levels, text_map], boxes)
    rois = torch.cat(
        [torch.cat([torch.full((len(b), 1), float(i)), b.tensor], 1) for i, b in enumerate(boxes)]
    )
    text = torchvision.ops.roi_align(
        text_map, rois, 7, spatial_scale=1 / 32, sampling_ratio=0, aligned=True
    )
    expected = image_pooler(levels, boxes) + pooler.project(text)
    assert got.shape == (3, 8, 7, 7) and text.abs().sum() > 0
    torch.testing.assert_close(got, expected)


def test_box_head_text_learns_and_needs_its_heads(bpe_folder, text_pages):
    cfg = text_cfg(bpe_folder, BOX_HEAD=True, TYPE="")  # text at the box head only
    model = build(cfg).train()
    inputs = [LayoutDatasetMapper(cfg, is_train=True)(d) for d in text_pages]
    embeddings = model.backbone.bottom_up.backbone.embeddings.word_embeddings.weight

    def word_gradient():
        model.zero_grad()
        torch.manual_seed(1)  # the same proposals sampled
        with EventStorage():
            sum(model(inputs).values()).backward()
        return embeddings.grad.clone()

    through_image_only = word_gradient()  # text tokens attend with the patches
    project = model.roi_heads.box_pooler.project
    assert project.weight.grad.abs().sum() > 0  # the text map reaches the box head
    with torch.no_grad():
        project.weight.normal_(std=0.01)
    also_through_box_head = word_gradient()
    assert (also_through_box_head - through_image_only).abs().sum() > 1e-3 * (
        through_image_only.abs().sum()
    )  # … and once the projection is non-zero, the box head's loss reaches the words

    cfg.MODEL.ROI_HEADS.NAME = "CascadeROIHeads"
    with pytest.raises(ValueError, match=r"FUSION\.BOX_HEAD needs MODEL\.ROI_HEADS\.NAME Layout"):
        build_model(cfg)


@pytest.mark.parametrize(
    "fusion",
    [
        {"SEGMENTS": True, "REDUCE": "mean"},
        {"BOX_HEAD": True, "REDUCE": "mean"},
        {"TYPE": "gated_add", "LAYERS": ["layer0", "layer3"]},
    ],
    ids=["segments_mean", "box_head", "gated_add"],
)
def test_variants_export_to_onnx_equal_to_eager(fusion, bpe_folder, text_pages, tmp_path):
    cfg = text_cfg(bpe_folder, **fusion)
    model = build(cfg).eval()
    if fusion.get("BOX_HEAD"):
        torch.nn.init.normal_(model.roi_heads.box_pooler.project.weight, std=0.05)
    page = LayoutDatasetMapper(cfg, is_train=False)(text_pages[0])
    assert_onnx_equals_eager(model, page, tmp_path / "m.onnx")


def test_every_shipped_ablation_variant_is_a_valid_config():
    """Each variant of configs/ablation/*.yaml merges onto the CDLA text config (unknown or
    misspelt keys are errors naming the key)."""
    from pathlib import Path

    from ditod.config import load_config
    from ditod.engine.ablation import read_variants

    root = Path(__file__).resolve().parents[1]
    files = sorted((root / "configs" / "ablation").glob("*.yaml"))
    assert len(files) >= 3
    for path in files:
        for name, overrides in read_variants(path).items():
            cfg = load_config(root / "configs/cdla/cascade_layoutlmv3_text_gated.yaml", overrides)
            image_only = name in ("image_only", "layoutlmv3")
            assert cfg.MODEL.LAYOUTLMV3.IMAGE_ONLY is image_only, (path.name, name)


def test_merged_classes_ap_counts_boxes_found_with_the_look_alike_label(tmp_path):
    """Two look-alike classes, every box found but with the other one's label: per-class AP 0,
    the merged AP 100; a box not found at all lowers the merged AP too."""
    from ditod.engine.ablation import merged_classes_ap

    categories = [
        {"id": 1, "name": "Figure caption"},
        {"id": 2, "name": "Table caption"},
        {"id": 3, "name": "Text"},
    ]
    boxes = [[10, 10 + 40 * i, 200, 12] for i in range(4)]
    gt = {
        "images": [{"id": 1, "width": 300, "height": 300, "file_name": "p.png"}],
        "categories": categories,
        "annotations": [
            {
                "id": i + 1,
                "image_id": 1,
                "category_id": 1 + i % 2,
                "bbox": box,
                "area": box[2] * box[3],
                "iscrowd": 0,
            }
            for i, box in enumerate(boxes)
        ],
    }
    swapped = [
        {"image_id": 1, "category_id": 2 - i % 2, "bbox": box, "score": 0.9}
        for i, box in enumerate(boxes)
    ]
    results = tmp_path / "results.json"
    text = {"image_id": 1, "category_id": 3, "bbox": boxes[0], "score": 0.99}
    results.write_text(json.dumps([*swapped, text]))
    classes = ["Figure caption", "Table caption"]
    assert merged_classes_ap(gt, results, classes) == pytest.approx(100.0)
    results.write_text(json.dumps(swapped[:2]))
    assert merged_classes_ap(gt, results, classes) == pytest.approx(100.0 * 2 / 4, abs=1.0)
    with pytest.raises(ValueError, match=r"'Caption'.*not in the ground truth"):
        merged_classes_ap(gt, results, ["Caption"])
