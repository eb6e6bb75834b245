"""The relation module (RM, MODEL.RELATION): batched pages equal each page alone, equivariant to
the order of the boxes, a detector with it starts as the plain cascade, learns jointly, and
exports."""

import pytest
import torch
from detection_match import assert_same_detections as match_detections
from detection_match import detections_of
from detectron2.modeling import build_model
from detectron2.structures import Boxes
from detectron2.utils.events import EventStorage
from test_export import assert_onnx_equals_eager
from test_text_variants import build, text_cfg

from ditod.data.mapper import LayoutDatasetMapper
from ditod.modeling.relation import BoxRelation


def relation_cfg(tokenizer, layers=2):
    cfg = text_cfg(tokenizer)
    cfg.MODEL.ROI_HEADS.NAME = "LayoutCascadeROIHeads"
    cfg.MODEL.RELATION.LAYERS = layers
    cfg.MODEL.RELATION.DIM = 32
    cfg.MODEL.RELATION.HEADS = 4
    return cfg


def random_relation(seed=0):
    torch.manual_seed(seed)
    relation = BoxRelation(16, num_classes=3, dim=32, heads=4, layers=2)
    for output in (relation.scores, relation.deltas):  # not the zero start
        torch.nn.init.normal_(output.weight)
    generator = torch.Generator().manual_seed(seed)
    boxes = []
    for count in (5, 9):
        xy = torch.rand(count, 2, generator=generator) * 300
        boxes.append(
            Boxes(torch.cat([xy, xy + 10 + torch.rand(count, 2, generator=generator) * 100], 1))
        )
    features = torch.randn(14, 16, generator=generator)
    return relation, features, boxes, [(400, 320), (420, 300)]


@pytest.mark.parametrize("training", [False, True])
def test_pages_batched_equal_each_page_alone(training):
    relation, features, boxes, sizes = random_relation()
    relation.train(training)
    scores, deltas = relation(features, boxes, sizes)
    assert scores.shape == (14, 4) and deltas.shape == (14, 4)
    first = relation(features[:5], boxes[:1], sizes[:1])
    second = relation(features[5:], boxes[1:], sizes[1:])
    torch.testing.assert_close(scores, torch.cat([first[0], second[0]]), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(deltas, torch.cat([first[1], second[1]]), atol=1e-5, rtol=1e-5)
    # the boxes of a page do see each other: one box moved changes the others' outputs
    moved = Boxes(boxes[1].tensor.clone())
    moved.tensor[0] += 50
    other = relation(features[5:], [moved], sizes[1:])
    assert (other[0][1:] - second[0][1:]).abs().max() > 1e-4


def test_equivariant_to_the_order_of_the_boxes():
    relation, features, boxes, sizes = random_relation(seed=1)
    relation.eval()
    order = torch.randperm(9, generator=torch.Generator().manual_seed(3))
    scores, deltas = relation(features[5:], boxes[1:], sizes[1:])
    shuffled = relation(features[5:][order], [Boxes(boxes[1].tensor[order])], sizes[1:])
    torch.testing.assert_close(shuffled[0], scores[order], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(shuffled[1], deltas[order], atol=1e-5, rtol=1e-5)


def test_detector_with_relation_starts_as_the_plain_cascade_and_learns(bpe_folder, text_pages):
    plain = build(text_cfg(bpe_folder)).eval()
    cfg = relation_cfg(bpe_folder)
    model = build_model(cfg).eval()
    missing, unexpected = model.load_state_dict(plain.state_dict(), strict=False)
    assert missing and all(k.startswith("roi_heads.relation.") for k in missing)
    assert not unexpected
    page = LayoutDatasetMapper(cfg, is_train=False)(text_pages[0])
    with torch.no_grad():
        expected = plain.inference([page], do_postprocess=False)[0]
        got = model.inference([page], do_postprocess=False)[0]
    assert len(expected) > 10
    match_detections(
        detections_of(got),
        detections_of(expected),
        box_atol=1e-3,
        score_atol=1e-5,
        cap=cfg.TEST.DETECTIONS_PER_IMAGE,
    )

    torch.manual_seed(0)
    model = build_model(cfg).train()  # heads as initialised: boxes stay near the ground truth
    inputs = [LayoutDatasetMapper(cfg, is_train=True)(d) for d in text_pages]
    with EventStorage():
        losses = model(inputs)
    sum(losses.values()).backward()
    relation = model.roi_heads.relation
    assert relation.scores.weight.grad.abs().sum() > 0  # trained by the last stage's losses
    assert losses["loss_box_reg_stage2"] > 0  # foreground boxes at the last stage's IoU …
    assert relation.deltas.weight.grad.abs().sum() > 0  # … whose deltas it refines

    cfg.MODEL.ROI_HEADS.NAME = "CascadeROIHeads"
    with pytest.raises(ValueError, match=r"MODEL\.RELATION\.LAYERS needs MODEL\.ROI_HEADS\.NAME"):
        build_model(cfg)


def test_detector_with_relation_exports_to_onnx(bpe_folder, text_pages, tmp_path):
    cfg = relation_cfg(bpe_folder)
    model = build(cfg).eval()
    page = LayoutDatasetMapper(cfg, is_train=False)(text_pages[0])
    assert_onnx_equals_eager(model, page, tmp_path / "m.onnx")
