"""Shared fixtures: tiny synthetic COCO datasets built in-process."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


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
            x = int(rng.integers(0, width - w)) if k == 0 else min(width - w, 80)
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
