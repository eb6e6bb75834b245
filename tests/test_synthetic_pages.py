"""ditod.data.synthetic (datasets/synthetic_pages.py): reproducible pages whose OCR lines and
boxes are exact."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ditod import fonts
from ditod.data import synthetic as synthetic_pages
from ditod.data.datasets import load_layout_coco_json


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    out = tmp_path_factory.mktemp("synthetic")
    return out, synthetic_pages.generate(out, pages=5, seed=3, split_val=0.4)


def test_same_seed_same_pages(pages, tmp_path):
    out, paths = pages
    again = synthetic_pages.generate(tmp_path, pages=5, seed=3, split_val=0.4)
    assert paths["train"].read_text() == again["train"].read_text()
    assert (out / "OCR" / "en_00001.json").read_text() == (
        tmp_path / "OCR" / "en_00001.json"
    ).read_text()


def test_ocr_boxes_lie_on_the_rendered_text(pages):
    out, _ = pages
    for ocr_file in sorted((out / "OCR").glob("*.json")):
        ocr = json.loads(ocr_file.read_text())
        image = np.asarray(Image.open(out / "images" / f"{ocr_file.stem}.png").convert("L"))
        assert (ocr["W"], ocr["H"]) == (image.shape[1], image.shape[0])
        assert len(ocr["words"]) == len(ocr["bbox"]) > 20
        for x, y, w, h in ocr["bbox"]:
            region = image[y : y + h, x : x + w]
            assert (region < 128).mean() > 0.05  # ink inside every line box


def test_coco_splits_have_the_cdla_classes_and_load(pages):
    out, paths = pages
    train = load_layout_coco_json(paths["train"], out / "images", dataset_name="synthetic_test")
    val = json.loads(paths["val"].read_text())
    assert len(train) == 3 and len(val["images"]) == 2
    names = [c["name"] for c in val["categories"]]
    assert names == list(synthetic_pages.CDLA_CLASSES)
    assert {a["category_id"] for d in train for a in d["annotations"]} >= {0, 1, 6, 7, 8}
    assert Path(train[0]["ocr_file"]).is_file()


def test_blocks_do_not_overlap():
    """No block runs into another (a tall figure at a column's foot once covered the
    references), on pages enough to have reached the foot with every kind of block."""
    import tempfile

    with tempfile.TemporaryDirectory() as scratch:
        paths = synthetic_pages.generate(scratch, pages=30, seed=0, split_val=0.0)
        coco = json.loads(paths["train"].read_text())
    by_page = {}
    for a in coco["annotations"]:
        by_page.setdefault(a["image_id"], []).append(a["bbox"])
    for image_id, boxes in by_page.items():
        xywh = np.array(boxes, dtype=float)
        x0, y0 = xywh[:, 0], xywh[:, 1]
        x1, y1 = x0 + xywh[:, 2], y0 + xywh[:, 3]
        overlap_w = np.minimum(x1[:, None], x1[None]) - np.maximum(x0[:, None], x0[None])
        overlap_h = np.minimum(y1[:, None], y1[None]) - np.maximum(y0[:, None], y0[None])
        overlap = np.clip(overlap_w, 0, None) * np.clip(overlap_h, 0, None)
        np.fill_diagonal(overlap, 0)
        assert overlap.max() <= 2, f"page {image_id}: blocks overlap by {overlap.max()} px²"


def test_captions_are_told_apart_by_their_text_only(pages):
    _, paths = pages
    coco = json.loads(paths["train"].read_text())
    names = {c["id"]: c["name"] for c in coco["categories"]}
    captions = [a for a in coco["annotations"] if names[a["category_id"]].endswith("caption")]
    heights = {names[a["category_id"]]: a["bbox"][3] for a in captions}
    assert set(heights) == {"Figure caption", "Table caption"}
    assert len(set(heights.values())) == 1  # same font, same line height


def test_chinese_without_a_cjk_font_fails_clearly(monkeypatch):
    monkeypatch.setattr(fonts, "CJK_FONTS", ("/nonexistent/font.ttc",))
    with pytest.raises(FileNotFoundError, match="apt-get install fonts-wqy-microhei"):
        synthetic_pages.find_font("zh")


def _block_above(boxes, box):
    """The name of the block whose bottom is nearest above ``box`` in its column, or None."""
    x, y, w, _ = box
    above = [
        (y - (b[1] + b[3]), name)
        for name, b in boxes
        if b[1] + b[3] <= y and b[0] < x + w and x < b[0] + b[2]
    ]
    return min(above)[1] if above else None


@pytest.mark.parametrize("captions", ["below", "apart"])
def test_caption_placement(tmp_path, captions):
    """below: every figure and table has its caption right under it; apart: captions stand in
    the text flow, of either kind whatever block is above them (one may follow a figure or table
    by chance), so their place does not say their kind."""
    paths = synthetic_pages.generate(tmp_path, pages=12, seed=1, split_val=0.0, captions=captions)
    coco = json.loads(paths["train"].read_text())
    names = {c["id"]: c["name"] for c in coco["categories"]}
    pages = {}
    for a in coco["annotations"]:
        pages.setdefault(a["image_id"], []).append((names[a["category_id"]], a["bbox"]))
    under = {"Figure caption": 0, "Table caption": 0, "alone": 0}
    objects = 0
    for boxes in pages.values():
        objects += sum(name in ("Figure", "Table") for name, _ in boxes)
        for name, box in boxes:
            if name.endswith("caption"):
                above = _block_above(boxes, box)
                under[name if above == name.split()[0] else "alone"] += 1
    assert objects > 10 and under["alone"] > 10
    if captions == "below":
        assert under["Figure caption"] + under["Table caption"] == objects
    else:
        assert under["Figure caption"] + under["Table caption"] < objects / 4
        kinds = [n for b in pages.values() for n, _ in b if n.endswith("caption")]
        assert 0.3 < kinds.count("Figure caption") / len(kinds) < 0.7


def test_unknown_caption_placement_is_refused(tmp_path):
    with pytest.raises(ValueError, match="captions 'beside' is not one of"):
        synthetic_pages.generate(tmp_path, pages=1, captions="beside")


def test_labelme_layout_is_cdlas_and_holds_the_coco_layouts_boxes(pages, tmp_path):
    out, paths = pages
    folders = synthetic_pages.generate(tmp_path, pages=5, seed=3, split_val=0.4, layout="labelme")
    assert folders == {"train": tmp_path / "train", "val": tmp_path / "val"}
    coco = {
        split: json.loads(paths[split].read_text()) for split in ("train", "val")
    }  # the same pages, as COCO
    for split, data in coco.items():
        names = {c["id"]: c["name"] for c in data["categories"]}
        for image in data["images"]:
            stem = Path(image["file_name"]).stem
            page = json.loads((tmp_path / split / f"{stem}.json").read_text())
            assert page["imagePath"] == f"{stem}.jpg" and page["imageData"] is None
            assert (page["imageWidth"], page["imageHeight"]) == (image["width"], image["height"])
            assert Image.open(tmp_path / split / page["imagePath"]).format == "JPEG"
            boxes = []
            for shape in page["shapes"]:
                xs, ys = [x for x, _ in shape["points"]], [y for _, y in shape["points"]]
                boxes.append(
                    (shape["label"], min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys))
                )
            expected = [
                (names[a["category_id"]], *a["bbox"])
                for a in data["annotations"]
                if a["image_id"] == image["id"]
            ]
            assert sorted(boxes) == sorted(expected)
            assert (tmp_path / "text" / f"{stem}.json").read_text() == (
                out / "OCR" / f"{stem}.json"
            ).read_text()
    with pytest.raises(ValueError, match="layout 'voc' is not one of"):
        synthetic_pages.generate(tmp_path, pages=1, layout="voc")
