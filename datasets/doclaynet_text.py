#!/usr/bin/env python
"""Turn DocLayNet's text cells into the OCR JSON the loader reads: text-fused DocLayNet with no OCR.

    python datasets/doclaynet_text.py --cells data/DocLayNet/extra/JSON --out data/DocLayNet/OCR \
        [--coco data/DocLayNet/COCO/train.json ...]

DocLayNet's extra archive (``DocLayNet_extra.zip``) holds per page ``JSON/<page_hash>.json``:
``{"metadata": {"page_hash", "coco_width", "coco_height", ...}, "cells": [{"bbox": [x, y, w, h],
"text", "font": {...}}, ...]}``, cell boxes in the pixels of the page's PNG (1025 × 1025). Each
becomes ``<out>/<page_hash>.json`` (``bbox``/``words`` one entry per cell, ``W``/``H`` the PNG's
size, ``engine`` naming the source), written atomically; files written before are kept. With
``--coco``, only those splits' pages are converted and each must have its cells file with the
image's size. Exit status 1 if any page failed (listed with the reason).
"""

import argparse
import json
import logging
import sys
from pathlib import Path

from tqdm import tqdm

from ditod.file_io import write_json_atomic

logger = logging.getLogger("doclaynet_text")

ENGINE = {"name": "doclaynet-cells", "version": "DocLayNet extra JSON"}
# Cells may overhang the page by rounding; further out the file does not fit its page.
TOLERANCE = 2.0


def convert_page(source: Path, size: tuple[int, int] | None = None) -> dict:
    """One DocLayNet cells JSON → OCR JSON dict. ``size``: the COCO image's (width, height) it
    must match. Raises ``ValueError`` naming ``source`` and what is wrong."""
    try:
        page = json.loads(source.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ValueError(f"{source}: not readable JSON ({error})") from None
    if not isinstance(page, dict) or not isinstance(page.get("cells"), list):
        raise ValueError(f"{source}: no 'cells' list (not a DocLayNet extra JSON file)")
    meta = page.get("metadata") or {}
    width, height = meta.get("coco_width"), meta.get("coco_height")
    if not (isinstance(width, int | float) and isinstance(height, int | float)):
        raise ValueError(f"{source}: metadata has no coco_width/coco_height")
    if size is not None and tuple(size) != (width, height):
        raise ValueError(
            f"{source}: cells are for a {width}x{height} page but the COCO image "
            f"is {size[0]}x{size[1]}"
        )
    boxes, words = [], []
    for index, cell in enumerate(page["cells"]):
        text = str(cell.get("text", "")).strip()
        box = cell.get("bbox")
        if not text:
            continue
        if not (
            isinstance(box, list) and len(box) == 4 and all(isinstance(v, int | float) for v in box)
        ):
            raise ValueError(f"{source}: cell {index} has no [x, y, w, h] bbox: {box!r}")
        x, y, w, h = box
        if (
            w < 0
            or h < 0
            or x < -TOLERANCE
            or y < -TOLERANCE
            or x + w > width + TOLERANCE
            or y + h > height + TOLERANCE
        ):
            raise ValueError(
                f"{source}: cell {index} box {box} is not [x, y, w, h] inside the "
                f"{width}x{height} page"
            )
        boxes.append([round(float(v), 2) for v in box])
        words.append(text)
    return {"bbox": boxes, "words": words, "W": int(width), "H": int(height), "engine": ENGINE}


def pages_to_convert(cells_dir: Path, coco_files) -> list[tuple[Path, str, tuple | None]]:
    """``(cells file, output stem, expected size)`` of every page to convert."""
    if not coco_files:
        return [(p, p.stem, None) for p in sorted(cells_dir.glob("*.json"))]
    pages = {}
    for coco in coco_files:
        with open(coco, encoding="utf-8") as f:
            for image in json.load(f)["images"]:
                stem = Path(image["file_name"]).stem
                size = (image["width"], image["height"])
                pages[stem] = (cells_dir / f"{stem}.json", stem, size)
    return list(pages.values())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", required=True, help="DocLayNet extra's JSON/ folder")
    parser.add_argument("--out", required=True, help="OCR JSON folder (MODEL...OCR root)")
    parser.add_argument("--coco", nargs="*", help="COCO json(s) whose pages to convert")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    cells_dir, out = Path(args.cells), Path(args.out)
    if not cells_dir.is_dir():
        print(f"error: {cells_dir}: folder not found", file=sys.stderr)
        return 2
    failed, done, kept = [], 0, 0
    for source, stem, size in tqdm(pages_to_convert(cells_dir, args.coco), unit="page"):
        target = out / f"{stem}.json"
        if target.is_file():
            kept += 1
            continue
        if not source.is_file():
            failed.append(f"{source}: cells file not found")
            continue
        try:
            write_json_atomic(target, convert_page(source, size))
            done += 1
        except ValueError as error:
            failed.append(str(error))
    for error in failed:
        logger.error("%s", error)
    print(f"{done} pages written to {out}, {kept} already there, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
