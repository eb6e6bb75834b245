"""The install works: detectron2's own Cascade R-CNN trains a step and infers on CPU.

Uses detectron2's model-zoo config, COCO registration, DatasetMapper and COCO evaluation on a
tiny synthetic dataset, so a broken install, a missing shim or missing model-zoo configs fail here.
"""

import uuid

import pytest
import torch
from detectron2 import model_zoo
from detectron2.config import get_cfg
from detectron2.data import (
    DatasetCatalog,
    DatasetMapper,
    MetadataCatalog,
    build_detection_test_loader,
    build_detection_train_loader,
)
from detectron2.data.datasets import register_coco_instances
from detectron2.engine import SimpleTrainer
from detectron2.evaluation import COCOEvaluator, inference_on_dataset
from detectron2.modeling import build_model
from detectron2.solver import build_optimizer

import ditod  # noqa: F401  (shims before detectron2)


@pytest.fixture
def cascade_cfg(rectangle_coco, tmp_path):
    name = f"smoke_{uuid.uuid4().hex[:8]}"
    register_coco_instances(name, {}, str(rectangle_coco), str(rectangle_coco.parent / "images"))
    cfg = get_cfg()
    cfg.merge_from_file(model_zoo.get_config_file("Misc/cascade_mask_rcnn_R_50_FPN_1x.yaml"))
    cfg.merge_from_list(
        [
            "MODEL.WEIGHTS",
            "",
            "MODEL.DEVICE",
            "cpu",
            "MODEL.MASK_ON",
            False,
            "MODEL.RESNETS.DEPTH",
            18,
            "MODEL.RESNETS.RES2_OUT_CHANNELS",
            64,
            "MODEL.RESNETS.NORM",
            "BN",
            "MODEL.PIXEL_STD",
            [57.4, 57.1, 58.4],  # random init: unit-scale inputs
            "MODEL.ROI_HEADS.NUM_CLASSES",
            2,
            "MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE",
            64,
            "MODEL.ROI_HEADS.SCORE_THRESH_TEST",
            0.0,  # untrained: keep every box for evaluation
            "DATASETS.TRAIN",
            (name,),
            "DATASETS.TEST",
            (name,),
            "INPUT.MIN_SIZE_TRAIN",
            (128,),
            "INPUT.MAX_SIZE_TRAIN",
            256,
            "INPUT.MIN_SIZE_TEST",
            128,
            "INPUT.MAX_SIZE_TEST",
            256,
            "SOLVER.IMS_PER_BATCH",
            2,
            "SOLVER.BASE_LR",
            0.001,
            "DATALOADER.NUM_WORKERS",
            0,
            "OUTPUT_DIR",
            str(tmp_path / "out"),
        ]
    )
    yield cfg
    DatasetCatalog.remove(name)
    MetadataCatalog.remove(name)


def test_cascade_rcnn_train_step_and_inference_on_cpu(cascade_cfg):
    torch.manual_seed(0)
    cfg = cascade_cfg
    model = build_model(cfg)
    assert len(model.roi_heads.box_predictor) == 3  # a real cascade

    loader = build_detection_train_loader(cfg, mapper=DatasetMapper(cfg, is_train=True))
    trainer = SimpleTrainer(model, loader, build_optimizer(cfg, model))
    trainer.train(0, 1)
    losses = trainer.storage.latest()
    for stage in range(3):
        assert f"loss_cls_stage{stage}" in losses
    assert all(torch.isfinite(torch.tensor(v[0])) for k, v in losses.items() if "loss" in k)

    evaluator = COCOEvaluator(cfg.DATASETS.TEST[0], output_dir=cfg.OUTPUT_DIR, use_fast_impl=False)
    test_loader = build_detection_test_loader(cfg, cfg.DATASETS.TEST[0])
    results = inference_on_dataset(model, test_loader, evaluator)
    assert set(results["bbox"]) >= {"AP", "AP50", "AP-block", "AP-frame"}

    model.eval()
    batch = next(iter(test_loader))
    with torch.no_grad():
        (prediction,) = model(batch[:1])
    instances = prediction["instances"]
    assert instances.image_size == (128, 160)
    assert instances.pred_boxes.tensor.shape[1] == 4
