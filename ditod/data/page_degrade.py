"""What scanning and compression do to a page, for synthetic pages: a slight rotation (boxes
follow: each becomes the box around its rotated corners), blur, sensor noise, grey paper, JPEG
compression. Most real pages of layout datasets are JPEGs, so most pages get at least that."""

import io
import math
import random

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter

__all__ = ["degrade", "rotate_box"]

SCANNED_SHARE = 0.3  # pages degraded as scans are
JPEG_SHARE = 0.5  # of the other pages, those saved once as a JPEG would be


def rotate_box(box, degrees: float, center) -> list:
    """``[x, y, w, h]`` after ``Image.rotate(degrees)`` about ``center``: the box around its
    rotated corners."""
    x, y, w, h = box
    cx, cy = center
    cos, sin = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    xs, ys = [], []
    for px, py in ((x, y), (x + w, y), (x, y + h), (x + w, y + h)):
        dx, dy = px - cx, py - cy
        xs.append(cx + dx * cos + dy * sin)
        ys.append(cy - dx * sin + dy * cos)
    x0, y0, x1, y1 = (
        math.floor(min(xs)),
        math.floor(min(ys)),
        math.ceil(max(xs)),
        math.ceil(max(ys)),
    )
    return [x0, y0, x1 - x0, y1 - y0]


def _clip(box, width: int, height: int) -> list:
    x0, y0 = max(0, box[0]), max(0, box[1])
    x1, y1 = min(width, box[0] + box[2]), min(height, box[1] + box[3])
    return [x0, y0, x1 - x0, y1 - y0]


def _jpeg(image: Image.Image, quality: int) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


def degrade(image: Image.Image, boxes: list, ocr_boxes: list, rng: random.Random):
    """``(image, boxes, ocr_boxes)`` as a scan (``SCANNED_SHARE`` of calls) or a JPEG (half of
    the rest) would give them; ``boxes`` are ``(class, [x, y, w, h])``, ``ocr_boxes``
    ``[x, y, w, h]``."""
    roll = rng.random()
    if roll >= SCANNED_SHARE:
        if roll < SCANNED_SHARE + JPEG_SHARE * (1 - SCANNED_SHARE):
            image = _jpeg(image, rng.randint(70, 95))
        return image, boxes, ocr_boxes
    width, height = image.size
    if rng.random() < 0.6:
        degrees = rng.uniform(-0.8, 0.8)
        center = (width / 2, height / 2)
        image = image.rotate(degrees, Image.Resampling.BICUBIC, center=center, fillcolor="white")
        boxes = [(name, _clip(rotate_box(b, degrees, center), width, height)) for name, b in boxes]
        ocr_boxes = [_clip(rotate_box(b, degrees, center), width, height) for b in ocr_boxes]
    if rng.random() < 0.5:
        image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 0.9)))
    if rng.random() < 0.5:
        image = ImageEnhance.Contrast(image).enhance(rng.uniform(0.7, 1.1))
    if rng.random() < 0.5:
        generator = np.random.default_rng(rng.randrange(2**32))
        pixels = np.asarray(image, dtype=np.float32)
        pixels += generator.normal(0, rng.uniform(3, 12), pixels.shape[:2])[..., None]
        image = Image.fromarray(pixels.clip(0, 255).astype(np.uint8))
    if rng.random() < 0.5:
        image = image.convert("L").convert("RGB")
    return _jpeg(image, rng.randint(35, 85)), boxes, ocr_boxes
