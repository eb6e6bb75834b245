"""Shared fixtures: tiny tokenizers and synthetic COCO datasets built in-process."""

import ditod  # noqa: F401  (detectron2 shims before any test imports detectron2)

# isort: split
import importlib.util
import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ditod.data.class_sets import PUBLAYNET_CLASSES
from layoutlmv3.tokenization import train_bpe_tokenizer, train_sentencepiece_tokenizer

ROOT = Path(__file__).resolve().parents[1]


def import_script(relative: str):
    """A script of this repository (``tools/…``, ``datasets/…``; not packages) as a module."""
    path = ROOT / relative
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_rectangle_coco(root: Path, num_images: int = 4, size=(160, 128), seed: int = 0) -> Path:
    """Pages with dark filled rectangles (class "block") and outlined ones ("frame").

    Writes ``root/images/*.png`` and ``root/annotations.json``; returns the json path.
    """
    rng = np.random.default_rng(seed)
    width, height = size
    (root / "images").mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for image_id in range(1, num_images + 1):
        page = np.full((height, width, 3), 255, np.uint8)
        for k in range(2):
            w, h = rng.integers(30, 60), rng.integers(20, 40)
            x = int(rng.integers(0, width - w)) if k == 0 else int(min(width - w, 80))
            y = 10 + k * 60
            category = k + 1
            if category == 1:
                page[y : y + h, x : x + w] = 40
            else:
                page[y : y + h, x : x + w] = 40
                page[y + 3 : y + h - 3, x + 3 : x + w - 3] = 255
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": category,
                    "bbox": [x, y, int(w), int(h)],
                    "area": int(w * h),
                    "iscrowd": 0,
                }
            )
        name = f"page_{image_id:03d}.png"
        Image.fromarray(page).save(root / "images" / name)
        images.append({"id": image_id, "file_name": name, "width": width, "height": height})
    coco = {
        "images": images,
        "annotations": annotations,
        "categories": [{"id": 1, "name": "block"}, {"id": 2, "name": "frame"}],
    }
    path = root / "annotations.json"
    path.write_text(json.dumps(coco))
    return path


@pytest.fixture
def rectangle_coco(tmp_path):
    return write_rectangle_coco(tmp_path)


CORPUS_EN = [
    "Figure 3: results of the model",
    "Table 2: accuracy per class",
    "Introduction",
    "text title list table figure line 0 1 2 3 4 5 6 7 8 9",
] * 20
CORPUS_ZH = ["模型结果图表准确率", "表格图像模型", "Figure results"] * 30


@pytest.fixture(scope="session")
def bpe_folder(tmp_path_factory):
    """A layoutlmv3-base style folder: byte-level BPE wrapped as LayoutLMv3Tokenizer."""
    folder = tmp_path_factory.mktemp("bpe")
    return train_bpe_tokenizer(CORPUS_EN, folder / "tokenizer", vocab_size=300, min_frequency=1)


@pytest.fixture(scope="session")
def xlmr_folder(tmp_path_factory):
    """A layoutlmv3-base-chinese style folder: sentencepiece.bpe.model + tokenizer_config.json."""
    return train_sentencepiece_tokenizer(CORPUS_ZH, tmp_path_factory.mktemp("xlmr"), vocab_size=30)


PUBLAYNET_SAMPLES = Path(
    os.environ.get(
        "DITOD_SAMPLES",
        Path(__file__).resolve().parents[2] / "shared" / "data" / "publaynet-samples",
    )
)


def write_block_pages(root: Path, num_images: int = 20, size=(596, 794), seed: int = 0) -> Path:
    """PubLayNet-like stand-in pages: per class a block with its own texture (solid, outline,
    stripes, grid, dots) at a random place. Writes ``root/*.png`` and ``root/pages.json``."""
    rng = np.random.default_rng(seed)
    width, height = size
    root.mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for image_id in range(1, num_images + 1):
        page = np.full((height, width, 3), 255, np.uint8)
        for category in range(1, len(PUBLAYNET_CLASSES) + 1):
            w, h = int(rng.integers(120, 260)), int(rng.integers(40, 110))
            x = int(rng.integers(10, width - w - 10))
            y = 20 + (category - 1) * (height - 40) // len(PUBLAYNET_CLASSES)
            block = page[y : y + h, x : x + w]
            if category == 1:
                block[::6] = 30
            elif category == 2:
                block[:] = 30
            elif category == 3:
                block[:, ::8] = 30
            elif category == 4:
                block[::10] = 30
                block[:, ::10] = 30
            else:
                block[::4, ::4] = 30
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": category,
                    "bbox": [x, y, w, h],
                    "area": w * h,
                    "iscrowd": 0,
                }
            )
        name = f"page_{image_id:03d}.png"
        Image.fromarray(page).save(root / name)
        images.append({"id": image_id, "file_name": name, "width": width, "height": height})
    categories = [{"id": i, "name": n} for i, n in enumerate(PUBLAYNET_CLASSES, start=1)]
    path = root / "pages.json"
    path.write_text(
        json.dumps({"images": images, "annotations": annotations, "categories": categories})
    )
    return path


def write_annotation_ocr(coco_json: Path, ocr_root: Path, line_height: int = 24) -> None:
    """OCR JSON per page derived from the annotations: each box split into lines of
    ``line_height`` pixels whose words name the class ("title line 2")."""
    coco = json.loads(coco_json.read_text())
    names = {c["id"]: c["name"] for c in coco["categories"]}
    ocr_root.mkdir(parents=True, exist_ok=True)
    for image in coco["images"]:
        boxes, words = [], []
        for ann in coco["annotations"]:
            if ann["image_id"] != image["id"]:
                continue
            x, y, w, h = ann["bbox"]
            for k, top in enumerate(np.arange(y, y + h, line_height)):
                boxes.append([x, float(top), w, float(min(line_height, y + h - top))])
                words.append(f"{names[ann['category_id']]} line {k}")
        page = {"bbox": boxes, "words": words, "W": image["width"], "H": image["height"]}
        name = Path(image["file_name"]).with_suffix(".json")
        (ocr_root / name).write_text(json.dumps(page))


@pytest.fixture(scope="session")
def publaynet_samples(tmp_path_factory):
    """(json, image_root, ocr_root) of the 20 shared PubLayNet pages (``$DITOD_SAMPLES`` or
    ``../shared/data/publaynet-samples``); OCR derived from the annotations. Tests of real
    pages are skipped, saying so, where they are not on this machine."""
    if not (PUBLAYNET_SAMPLES / "samples.json").is_file():
        pytest.skip(
            f"the real PubLayNet pages are not at {PUBLAYNET_SAMPLES} (set DITOD_SAMPLES to a "
            "folder with samples.json and its images)"
        )
    root = tmp_path_factory.mktemp("publaynet")
    write_annotation_ocr(PUBLAYNET_SAMPLES / "samples.json", root / "OCR")
    return PUBLAYNET_SAMPLES / "samples.json", PUBLAYNET_SAMPLES, root / "OCR"


@pytest.fixture(scope="session")
def block_pages(tmp_path_factory):
    """(json, image_root, ocr_root) of 20 generated pages with PubLayNet's classes (blocks of
    text-like lines, tables, figures): for tests that need pages, not real ones."""
    root = tmp_path_factory.mktemp("block_pages")
    coco_json = write_block_pages(root / "pages")
    write_annotation_ocr(coco_json, root / "OCR")
    return coco_json, coco_json.parent, root / "OCR"


@pytest.fixture(scope="module")
def text_pages(tmp_path_factory):
    """Two rectangle pages with OCR JSON (6-pixel lines) as detectron2 dataset dicts."""
    from ditod.data.datasets import load_layout_coco_json

    root = tmp_path_factory.mktemp("text_pages")
    coco = write_rectangle_coco(root, num_images=2)
    write_annotation_ocr(coco, root / "OCR", line_height=6)
    return load_layout_coco_json(coco, root / "images", dataset_name="text_pages")
