"""COCO layout datasets: loading checks and registration by config."""

import json
import logging

import pytest
from detectron2.config import get_cfg
from detectron2.data import DatasetCatalog, MetadataCatalog

from ditod import add_layoutlmv3_config, register_layout_datasets
from ditod.data.datasets import load_layout_coco_json


def coco(categories, annotations, images=None):
    images = images or [{"id": 1, "file_name": "a.png", "width": 100, "height": 80}]
    return {"images": images, "annotations": annotations, "categories": categories}


def ann(i, category, bbox, image_id=1):
    return {"id": i, "image_id": image_id, "category_id": category, "bbox": bbox, "iscrowd": 0}


def write(tmp_path, data, name="ann.json"):
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


def cfg_with(**datasets):
    cfg = get_cfg()
    add_layoutlmv3_config(cfg)
    for key, value in datasets.items():
        setattr(cfg.DATASETS, key, value)
    return cfg


def test_cdla_background_is_dropped_and_ids_made_contiguous(tmp_path, caplog):
    categories = [
        {"id": 0, "name": "_background_"},
        {"id": 1, "name": "Text"},
        {"id": 5, "name": "Title"},
    ]
    path = write(tmp_path, coco(categories, [ann(1, 1, [0, 0, 10, 10]), ann(2, 5, [5, 5, 9, 9])]))
    with caplog.at_level(logging.WARNING):
        dicts = load_layout_coco_json(path, tmp_path / "images", dataset_name="cdla_like")
    assert "dropped category 0 '_background_'" in caplog.text
    assert MetadataCatalog.get("cdla_like").thing_classes == ["Text", "Title"]
    assert [a["category_id"] for a in dicts[0]["annotations"]] == [0, 1]
    assert MetadataCatalog.get("cdla_like").thing_dataset_id_to_contiguous_id == {1: 0, 5: 1}
    assert dicts[0]["ocr_file"] == str(tmp_path / "OCR" / "a.json")


def test_background_with_annotations_is_an_error(tmp_path):
    path = write(tmp_path, coco([{"id": 0, "name": "_background_"}], [ann(1, 0, [0, 0, 5, 5])]))
    with pytest.raises(ValueError, match=r"ann.json: category 0 '_background_' has 1 annotations"):
        load_layout_coco_json(path, tmp_path)


def test_bad_annotations_are_skipped_and_counted(tmp_path, caplog):
    anns = [ann(1, 1, [0, 0, 0, 10]), ann(2, 1, [200, 10, 10, 10]), ann(3, 1, [90, 70, 30, 30])]
    path = write(tmp_path, coco([{"id": 1, "name": "text"}], anns))
    with caplog.at_level(logging.WARNING):
        dicts = load_layout_coco_json(path, tmp_path)
    assert "1 zero area" in caplog.text and "1 outside the image" in caplog.text
    assert [a["bbox"] for a in dicts[0]["annotations"]] == [[90, 70, 10, 10]]  # clipped


@pytest.mark.parametrize(
    "data, message",
    [
        (
            coco(
                [{"id": 1, "name": "t"}],
                [],
                images=[{"id": 1, "file_name": "a", "width": 1, "height": 1}] * 2,
            ),
            "duplicate image ids \\[1\\]",
        ),
        (coco([{"id": 1, "name": "t"}], [ann(1, 7, [0, 0, 1, 1])]), "category_id 7"),
        (coco([{"id": 1, "name": "t"}], [ann(1, 1, [0, 0, 1])]), "malformed bbox"),
        ({"images": []}, "no 'annotations' list"),
    ],
)
def test_broken_json_names_the_file_and_the_problem(tmp_path, data, message):
    with pytest.raises(ValueError, match=rf"ann.json: .*{message}"):
        load_layout_coco_json(write(tmp_path, data), tmp_path)


def test_builtin_and_extra_datasets_register_from_config(tmp_path):
    root = tmp_path / "data"
    (root / "publaynet").mkdir(parents=True)
    write(root / "publaynet", coco([{"id": 1, "name": "text"}], []), "val.json")
    extra = write(tmp_path, coco([{"id": 1, "name": "text"}], []), "mine.json")
    cfg = cfg_with(
        ROOT=str(root),
        EXTRA=[["mine_test", str(extra), str(tmp_path / "img"), str(tmp_path / "ocr")]],
        TRAIN=("mine_test",),
        TEST=("publaynet_val",),
    )
    register_layout_datasets(cfg)
    assert DatasetCatalog.get("mine_test")[0]["ocr_file"] == str(tmp_path / "ocr" / "a.json")
    pages = DatasetCatalog.get("publaynet_val")
    assert pages[0]["file_name"] == str(root / "publaynet" / "val" / "a.png")
    assert pages[0]["ocr_file"] == str(root / "publaynet" / "OCR" / "a.json")
    assert MetadataCatalog.get("publaynet_val").evaluator_type == "coco"


def test_misspelled_dataset_lists_close_matches():
    cfg = cfg_with(TRAIN=("publaynet_trian",), TEST=())
    with pytest.raises(ValueError, match=r"Did you mean publaynet_train"):
        register_layout_datasets(cfg)
