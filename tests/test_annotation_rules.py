"""Every rule of ditod.data.annotation_rules walked through the loader and the checker: what stops
the loader is the checker's error (same message), what the loader skips or fixes is the checker's
warning, and the loader really does it."""

import copy
import json
import logging

import pytest
from PIL import Image

from ditod.data.annotation_rules import ERROR, FIX, SKIP, read_coco
from ditod.data.dataset_check import check_dataset
from ditod.data.datasets import load_layout_coco_json

CLEAN = {
    "images": [
        {"id": 1, "file_name": "a.png", "width": 100, "height": 80},
        {"id": 2, "file_name": "b.png", "width": 100, "height": 80},
    ],
    "annotations": [
        {
            "id": 1,
            "image_id": 1,
            "category_id": 1,
            "bbox": [10, 10, 30, 20],
            "area": 600,
            "iscrowd": 0,
        },
        {
            "id": 2,
            "image_id": 2,
            "category_id": 2,
            "bbox": [5, 40, 50, 20],
            "area": 1000,
            "iscrowd": 0,
        },
    ],
    "categories": [{"id": 1, "name": "text"}, {"id": 2, "name": "title"}],
}


def with_annotation(**fields):
    def change(coco):
        coco["annotations"].append(
            {"id": 3, "image_id": 1, "category_id": 1, "area": 1, "iscrowd": 0, **fields}
        )

    return change


def set_key(path, value):
    def change(coco):
        target = coco
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return change


# rule → (change to the clean file, the loader's action, what the message says, check on the
# loaded records for SKIP/FIX: (total annotations, first record's bbox or None))
RULES = {
    "not_coco": (lambda c: c.pop("annotations"), ERROR, "no 'annotations' list", None),
    "duplicate_category_ids": (
        set_key(["categories", 1, "id"], 1),
        ERROR,
        "duplicate category ids [1]",
        None,
    ),
    "duplicate_image_ids": (
        set_key(["images", 1, "id"], 1),
        ERROR,
        "duplicate image ids [1]",
        None,
    ),
    "duplicate_annotation_ids": (
        set_key(["annotations", 1, "id"], 1),
        ERROR,
        "duplicate annotation ids [1]",
        None,
    ),
    "background_with_boxes": (
        set_key(["categories", 1, "name"], "_background_"),
        ERROR,
        "category 2 '_background_' has 1 annotations",
        None,
    ),
    "unknown_category": (
        with_annotation(bbox=[1, 1, 5, 5], category_id=9),
        ERROR,
        "annotation 3 has unknown category_id 9",
        None,
    ),
    "malformed_bbox": (
        with_annotation(bbox=[1, 1, 5]),
        ERROR,
        "annotation 3 has a malformed bbox [1, 1, 5]",
        None,
    ),
    "background_dropped": (
        lambda c: c["categories"].append({"id": 0, "name": "_background_"}),
        FIX,
        "dropped category 0 '_background_'",
        (2, [10, 10, 30, 20]),
    ),
    "category_ids_remapped": (
        lambda c: [
            set_key(["categories", 1, "id"], 5)(c),
            set_key(["annotations", 1, "category_id"], 5)(c),
        ],
        FIX,
        "category ids [1, 5] are 0-based or not contiguous",
        (2, None),
    ),
    "skipped_annotations": (
        lambda c: [
            with_annotation(bbox=[1, 1, 0, 5])(c),
            c["annotations"].append(
                {
                    "id": 4,
                    "image_id": 7,
                    "category_id": 1,
                    "area": 4,
                    "iscrowd": 0,
                    "bbox": [1, 1, 2, 2],
                }
            ),
        ],
        SKIP,
        "skipped annotations: 1 zero area, 1 unknown image id",
        (2, [10, 10, 30, 20]),
    ),
    "clipped_boxes": (
        set_key(["annotations", 0, "bbox"], [-5, 70, 30, 20]),
        FIX,
        "1 annotations partly outside their image (clipped)",
        (2, [0, 70, 25, 10]),
    ),
    "evaluation_fields_filled": (
        lambda c: [c["annotations"][0].pop("area"), c["annotations"][1].pop("iscrowd")],
        FIX,
        "1 annotations have no 'area' (evaluation computes it as COCO "
        "defines it: the segmentation's area, else the box's); 1 "
        "annotations have no 'iscrowd' (taken as 0)",
        (2, [10, 10, 30, 20]),
    ),
}


def test_every_rule_of_the_module_is_walked():
    covered = set()
    for change, *_ in RULES.values():
        coco = copy.deepcopy(CLEAN)
        change(coco)
        covered |= {finding.rule for finding in read_coco(coco, "x.json").findings}
    assert covered == set(RULES)
    assert read_coco(copy.deepcopy(CLEAN), "x.json").findings == []


@pytest.mark.parametrize("rule", sorted(RULES))
def test_loader_and_checker_agree(tmp_path, caplog, rule):
    change, action, message, loaded = RULES[rule]
    coco = copy.deepcopy(CLEAN)
    change(coco)
    (tmp_path / "images").mkdir()
    for name in ("a.png", "b.png"):
        Image.new("RGB", (100, 80), "white").save(tmp_path / "images" / name)
    json_file = tmp_path / "ann.json"
    json_file.write_text(json.dumps(coco))

    report = check_dataset(json_file, tmp_path / "images", check_ocr=False)
    if action == ERROR:
        with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
            load_layout_coco_json(json_file, tmp_path / "images")
        assert [m for m in report.errors if message in m], report.errors
        return
    with caplog.at_level(logging.INFO):
        records = load_layout_coco_json(json_file, tmp_path / "images")
    assert message in caplog.text
    assert report.errors == [] and [m for m in report.warnings if message in m], report.warnings
    total, first_box = loaded
    assert sum(len(r["annotations"]) for r in records) == total
    if first_box is not None:
        assert records[0]["annotations"][0]["bbox"] == first_box
