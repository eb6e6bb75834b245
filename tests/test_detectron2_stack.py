"""The detectron2 v0.6 behaviours this project leans on, on today's stack (Python 3.11, torch 2.14,
numpy 2): the shims of :mod:`ditod.compat` that replace broken code, and evaluation on COCO
ground truth without ``area``. Each shim test fails without its shim."""

import copy
import json
import uuid
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from detectron2.checkpoint import Checkpointer
from detectron2.data import DatasetCatalog, MetadataCatalog, build_detection_train_loader
from detectron2.engine import SimpleTrainer, hooks
from detectron2.modeling.anchor_generator import DefaultAnchorGenerator
from detectron2.structures import Boxes, Instances
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from torch import nn

from ditod.data.annotation_rules import read_coco
from ditod.data.datasets import register_layout_dataset
from ditod.engine.evaluation import LayoutEvaluator

TINY_CONFIG = (
    Path(__file__).resolve().parents[1] / "configs" / "tiny" / "cascade_layoutlmv3_tiny.yaml"
)


def test_mapper_returning_none_is_skipped_and_training_goes_on():
    """detectron2's documented skip (a mapper returns None) retries another sample; v0.6's retry
    called ``random.sample`` on a set, which Python >= 3.11 refuses."""
    seen = []

    def mapper(record):
        seen.append(record["id"])
        return None if record["id"] == 3 and seen.count(3) == 1 else record

    dataset = [{"id": i} for i in range(6)]
    loader = build_detection_train_loader(
        dataset=dataset,
        mapper=mapper,
        total_batch_size=2,
        aspect_ratio_grouping=False,
        num_workers=0,
        sampler=torch.utils.data.SequentialSampler(range(6)),
    )
    batches = [batch for _, batch in zip(range(3), loader)]
    assert seen.count(3) == 1  # skipped once, then never retried itself
    ids = [record["id"] for batch in batches for record in batch]
    assert len(ids) == 6 and 3 not in ids
    assert ids[:3] == [0, 1, 2] and ids[4:] == [4, 5]  # the retry took one of the others


class Quadratic(nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(3))

    def forward(self, data):
        return {"loss": (self.weight * data).square().sum()}


def run_with_scheduler(make_scheduler, folder, max_iter, resume=False, period=4):
    """SimpleTrainer + detectron2's LRScheduler and PeriodicCheckpointer hooks; the LR of every
    iteration run."""
    folder.mkdir(exist_ok=True)
    torch.manual_seed(0)
    model = Quadratic()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    scheduler = make_scheduler(optimizer)
    trainer = SimpleTrainer(model, iter([torch.ones(3)] * 100), optimizer)
    checkpointer = Checkpointer(model, str(folder), optimizer=optimizer, trainer=trainer)
    lrs = []

    class RecordLR(hooks.HookBase):
        def before_step(self):
            lrs.append(optimizer.param_groups[0]["lr"])

    trainer.register_hooks(
        [
            RecordLR(),
            hooks.LRScheduler(optimizer, scheduler),
            hooks.PeriodicCheckpointer(checkpointer, period),
        ]
    )
    start = 0
    if resume:
        start = checkpointer.resume_or_load("", resume=True)["iteration"] + 1
    trainer.train(start, max_iter)
    return lrs


@pytest.mark.parametrize(
    "make_scheduler",
    [
        lambda opt: torch.optim.lr_scheduler.StepLR(opt, step_size=3, gamma=0.5),
        lambda opt: torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=10),
        lambda opt: torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.5, total_steps=10),
    ],
    ids=["StepLR", "CosineAnnealingLR", "OneCycleLR"],
)
def test_resume_continues_a_torch_builtin_schedule_exactly(make_scheduler, tmp_path):
    full = run_with_scheduler(make_scheduler, tmp_path / "full", 10)
    run_with_scheduler(make_scheduler, tmp_path / "cut", 8)  # last checkpoint: iteration 7
    (tmp_path / "cut" / "last_checkpoint").write_text("model_0000003.pth")
    resumed = run_with_scheduler(make_scheduler, tmp_path / "cut", 10, resume=True)
    assert resumed == pytest.approx(full[4:], rel=1e-12)
    assert len(set(full)) > 3  # the schedule moves: a restart could not pass


def test_anchor_generation_prints_no_meshgrid_warning():
    generator = DefaultAnchorGenerator(
        sizes=[[32], [64]], aspect_ratios=[[0.5, 1.0]], strides=[4, 8], offset=0.5
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        anchors = generator([torch.zeros(1, 1, 3, 5), torch.zeros(1, 1, 2, 3)])
    centers = anchors[0].get_centers().reshape(3, 5, 2, 2)[:, :, 0]  # (row, column, xy)
    assert torch.allclose(centers[1, 2], torch.tensor([2.5 * 4, 1.5 * 4]))  # x from the column
    assert torch.allclose(centers[:, :, 0], (torch.arange(5) * 4 + 2.0).expand(3, 5))


def coco_pages(seed=0):
    """3 pages (one without annotations), boxes of every COCO size bucket, a crowd region, some
    with polygon segmentations (area of the polygon, not of its box), with ``area`` as COCO
    computes it; and detections near the boxes."""
    rng = np.random.default_rng(seed)
    images = [{"id": i, "file_name": f"p{i}.png", "width": 400, "height": 300} for i in (1, 2, 3)]
    annotations, detections = [], []
    for image_id in (1, 2):
        for k, size in enumerate([12, 20, 40, 70, 120, 150]):
            x, y = float(rng.integers(0, 400 - size)), float(rng.integers(0, 300 - size))
            ann = {
                "id": len(annotations) + 1,
                "image_id": image_id,
                "category_id": 1 + k % 2,
                "bbox": [x, y, float(size), float(size * 0.8)],
                "iscrowd": 0,
            }
            if k % 3 == 0:  # a triangle: its area is half its box's
                ann["segmentation"] = [[x, y, x + size, y, x, y + size * 0.8]]
            annotations.append(ann)
            for shift in (0.0, 0.35):
                w, h = size * (1 - shift / 2), size * 0.8
                detections.append(
                    (
                        image_id,
                        x + size * shift / 2,
                        y,
                        w,
                        h,
                        1 + k % 2,
                        float(rng.uniform(0.3, 1.0)),
                    )
                )
    annotations.append(
        {
            "id": len(annotations) + 1,
            "image_id": 2,
            "category_id": 1,
            "bbox": [300.0, 200.0, 90.0, 90.0],
            "iscrowd": 1,
        }
    )
    detections.append((2, 305.0, 205.0, 40.0, 40.0, 1, 0.95))  # inside the crowd: ignored
    detections.append((3, 10.0, 10.0, 50.0, 50.0, 2, 0.9))  # a page without boxes: false
    coco = {
        "images": images,
        "annotations": annotations,
        "categories": [{"id": 1, "name": "text"}, {"id": 2, "name": "title"}],
    }
    with_area = copy.deepcopy(coco)
    api = COCO()
    api.dataset = with_area
    api.createIndex()
    from pycocotools import mask as mask_util

    for ann in with_area["annotations"]:
        ann["area"] = (
            float(mask_util.area(api.annToRLE(ann)))
            if "segmentation" in ann
            else ann["bbox"][2] * ann["bbox"][3]
        )
    for ann in coco["annotations"]:
        if not ann["iscrowd"]:
            del ann["iscrowd"]
    return coco, with_area, detections


def evaluate_with_project(json_file, image_root, detections):
    name = f"stack_{uuid.uuid4().hex[:8]}"
    register_layout_dataset(name, json_file, image_root)
    try:
        DatasetCatalog.get(name)  # loads as training and evaluation do (metadata, findings)
        evaluator = LayoutEvaluator(name, tasks=("bbox",), distributed=False)
        evaluator.reset()
        for image_id in (1, 2, 3):
            mine = [d for d in detections if d[0] == image_id]
            instances = Instances((300, 400))
            instances.pred_boxes = Boxes(
                torch.tensor([[x, y, x + w, y + h] for _, x, y, w, h, _, _ in mine]).reshape(-1, 4)
            )
            instances.scores = torch.tensor([d[6] for d in mine])
            instances.pred_classes = torch.tensor([d[5] - 1 for d in mine], dtype=torch.long)
            evaluator.process([{"image_id": image_id}], [{"instances": instances}])
        return evaluator.evaluate()["bbox"]
    finally:
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)


def test_evaluation_without_area_equals_pycocotools_with_it(tmp_path):
    coco, with_area, detections = coco_pages()
    (tmp_path / "bare.json").write_text(json.dumps(coco))
    (tmp_path / "full.json").write_text(json.dumps(with_area))
    bare = evaluate_with_project(tmp_path / "bare.json", tmp_path, detections)
    full = evaluate_with_project(tmp_path / "full.json", tmp_path, detections)
    keys = ("AP", "AP50", "AP75", "APs", "APm", "APl")
    assert [bare[k] for k in keys] == pytest.approx([full[k] for k in keys], abs=1e-9)

    gt = COCO(str(tmp_path / "full.json"))
    results = [
        {"image_id": i, "bbox": [x, y, w, h], "category_id": c, "score": s}
        for i, x, y, w, h, c, s in detections
    ]
    reference = COCOeval(gt, gt.loadRes(results), "bbox")
    reference.evaluate(), reference.accumulate(), reference.summarize()
    assert [full[k] for k in keys] == pytest.approx(list(reference.stats[:6] * 100), abs=1e-6)
    assert all(0 < full[k] < 100 for k in keys)  # every bucket measured, none trivially


def test_missing_area_and_iscrowd_are_reported_by_the_rules():
    coco, _, _ = coco_pages()
    findings = [
        f for f in read_coco(coco, "bare.json").findings if f.rule == "evaluation_fields_filled"
    ]
    assert len(findings) == 1
    assert "13 annotations have no 'area'" in findings[0].message
    assert "12 annotations have no 'iscrowd'" in findings[0].message
    assert findings[0].message.startswith("bare.json: ")


def evaluate_boxes(tmp_path, coco, detections):
    path = tmp_path / f"gt_{uuid.uuid4().hex[:6]}.json"
    path.write_text(json.dumps(coco))
    return evaluate_with_project(path, tmp_path, detections)


def one_box_pages(crowd: bool):
    """Page 1: one text box and a region marked crowd (or an ordinary box) ; page 3: no boxes."""
    coco, _, _ = coco_pages()
    coco["annotations"] = [
        {"id": 1, "image_id": 1, "category_id": 1, "bbox": [20.0, 20.0, 100.0, 60.0]},
        {
            "id": 2,
            "image_id": 1,
            "category_id": 1,
            "bbox": [200.0, 100.0, 150.0, 150.0],
            "iscrowd": int(crowd),
        },
    ]
    return coco


def test_detections_in_a_crowd_region_are_not_false_and_empty_pages_count(tmp_path):
    hit = (1, 20.0, 20.0, 100.0, 60.0, 1, 0.5)
    inside_crowd = (1, 210.0, 110.0, 50.0, 50.0, 1, 0.9)
    assert evaluate_boxes(tmp_path, one_box_pages(crowd=True), [hit, inside_crowd])["AP"] == 100
    # the same box where the region is an ordinary one: a false positive above the hit
    ordinary = evaluate_boxes(tmp_path, one_box_pages(crowd=False), [hit, inside_crowd])
    assert ordinary["AP"] < 60
    # a confident box on the page without annotations is a false positive
    on_empty_page = (3, 20.0, 20.0, 100.0, 60.0, 1, 0.9)
    crowd_and_empty = evaluate_boxes(tmp_path, one_box_pages(crowd=True), [hit, on_empty_page])
    assert crowd_and_empty["AP"] == pytest.approx(50.5, abs=0.5)  # precision 1/2 at the hit


def test_no_detections_at_all_score_zero_not_nan(tmp_path):
    results = evaluate_boxes(tmp_path, one_box_pages(crowd=False), [])
    assert results["AP"] == 0 and results["AP50"] == 0 and results["APl"] == 0
    assert results["AP-text"] == 0
    assert np.isnan(results["APs"])  # no small boxes in the truth: COCO's -1, as with detections


def test_box2box_transform_round_trip_with_the_cascade_weights():
    from detectron2.modeling.box_regression import Box2BoxTransform

    g = torch.Generator().manual_seed(0)
    xy = torch.rand(50, 2, generator=g) * 500
    src = torch.cat([xy, xy + 5 + torch.rand(50, 2, generator=g) * 300], 1)
    target = src + torch.randn(50, 4, generator=g) * 8
    target[:, 2:] = torch.maximum(target[:, 2:], target[:, :2] + 1)
    for weights in ((10.0, 10.0, 5.0, 5.0), (20.0, 20.0, 10.0, 10.0), (30.0, 30.0, 15.0, 15.0)):
        transform = Box2BoxTransform(weights=weights)
        deltas = transform.get_deltas(src, target)
        assert torch.allclose(transform.apply_deltas(deltas, src), target, atol=1e-3)
    # deltas past the clamp stay finite: a box can grow at most exp(scale_clamp) times
    huge = torch.tensor([[0.0, 0.0, 1e4, 1e4]])
    out = Box2BoxTransform(weights=(1.0, 1.0, 1.0, 1.0)).apply_deltas(huge, src[:1])
    assert torch.isfinite(out).all()


def test_resize_shortest_edge_moves_boxes_and_polygons_with_the_image():
    from detectron2.data import detection_utils as utils
    from detectron2.data import transforms as T
    from detectron2.structures import BoxMode

    image = np.zeros((200, 300, 3), np.uint8)
    augs = T.AugmentationList([T.ResizeShortestEdge(400, max_size=500), T.RandomFlip(prob=1.0)])
    aug_input = T.AugInput(image)
    transforms = augs(aug_input)
    assert aug_input.image.shape == (333, 500, 3)  # 400 x 600 capped at 500 on the long side
    # as the project's loader gives them: floats (detectron2 scales int arrays in place: floors)
    coco = {
        "images": [{"id": 1, "width": 300, "height": 200, "file_name": "p.png"}],
        "categories": [{"id": 1, "name": "text"}],
        "annotations": [
            {
                "id": 1,
                "image_id": 1,
                "category_id": 1,
                "bbox": [30, 20, 60, 40],
                "segmentation": [[30, 20, 90, 20, 90, 60, 30, 60]],
            }
        ],
    }
    ann = {**read_coco(coco, "ints.json").annotations[1][0], "bbox_mode": BoxMode.XYWH_ABS}
    out = utils.transform_instance_annotations(ann, transforms, (333, 500))
    scale_x, scale_y = 500 / 300, 333 / 200
    expected = [500 - 90 * scale_x, 20 * scale_y, 500 - 30 * scale_x, 60 * scale_y]
    assert out["bbox_mode"] == BoxMode.XYXY_ABS
    assert out["bbox"] == pytest.approx(expected, abs=1e-3)
    polygon = out["segmentation"][0].reshape(-1, 2)
    assert polygon[:, 0].min() == pytest.approx(expected[0], abs=1e-3)
    assert polygon[:, 1].max() == pytest.approx(expected[3], abs=1e-3)
    instances = utils.annotations_to_instances([out], (333, 500), mask_format="polygon")
    assert instances.gt_boxes.tensor[0].tolist() == pytest.approx(expected, abs=1e-3)


def test_cascade_heads_of_the_tiny_detector_give_boxes_scores_and_classes_in_range():
    from detectron2.config import get_cfg
    from detectron2.modeling import build_model

    from ditod import add_layoutlmv3_config

    cfg = get_cfg()
    add_layoutlmv3_config(cfg)
    cfg.merge_from_file(str(TINY_CONFIG))
    cfg.MODEL.LAYOUTLMV3.IMAGE_ONLY = True
    cfg.MODEL.LAYOUTLMV3.FUSION.TYPE = ""
    cfg.MODEL.ROI_HEADS.NUM_CLASSES = 3
    cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST = 0.0
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    assert len(model.roi_heads.box_predictor) == 3
    with torch.no_grad():
        image = torch.randint(0, 255, (3, 160, 224), dtype=torch.uint8).float()
        outputs = model([{"image": image, "height": 320, "width": 448}])
    instances = outputs[0]["instances"]
    assert instances.image_size == (320, 448)  # rescaled to the requested output size
    n = len(instances)
    assert 0 < n <= cfg.TEST.DETECTIONS_PER_IMAGE
    boxes = instances.pred_boxes.tensor
    assert boxes.shape == (n, 4) and instances.scores.shape == (n,)
    assert (boxes[:, 2] >= boxes[:, 0]).all() and (boxes[:, 3] >= boxes[:, 1]).all()
    assert boxes[:, 0::2].min() >= 0 and boxes[:, 0::2].max() <= 448
    assert boxes[:, 1::2].min() >= 0 and boxes[:, 1::2].max() <= 320
    assert instances.scores.min() >= 0 and instances.scores.max() <= 1
    assert instances.pred_classes.min() >= 0 and instances.pred_classes.max() < 3


def test_the_logged_config_is_coloured_only_on_a_terminal():
    """detectron2 colours the config it logs (pygments) even into log files; the shim keeps the
    colours for a terminal only. Under pytest stdout is captured: not a terminal."""
    from detectron2.engine import defaults

    assert "\x1b[" in defaults._highlight.__wrapped__("a: 1\n", "config.yaml")  # the bug
    assert defaults._highlight("a: 1\n", "config.yaml") == "a: 1\n"
