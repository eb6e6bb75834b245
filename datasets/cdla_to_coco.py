#!/usr/bin/env python
"""Convert CDLA's labelme annotations to COCO json (10 classes, ids 1..10, no background).

    python datasets/cdla_to_coco.py --cdla-root data/CDLA [--out data/CDLA] [--splits train val]

Reads ``<cdla-root>/<split>/*.json`` (labelme: ``shapes`` with ``label`` and ``points``, image
beside each json) and writes ``<out>/<split>.json``, which ``cdla_train`` / ``cdla_val`` read
with images from ``<cdla-root>/<split>``. Polygons and rectangles become a box (min/max of the
points) and a polygon segmentation. An unknown label is an error naming the file.
"""

import argparse
import json
import logging
import sys
from pathlib import Path

from tqdm import tqdm

from ditod.data.class_sets import CDLA_CLASSES
from ditod.data.labelme import shape_polygon
from ditod.file_io import write_json_atomic
from ditod.pages.image_io import IMAGE_SUFFIXES

logger = logging.getLogger("cdla_to_coco")


def convert_split(split_dir: Path) -> dict:
    """COCO dict of one CDLA split folder."""
    class_ids = {name.lower(): i for i, name in enumerate(CDLA_CLASSES, start=1)}
    images, annotations = [], []
    files = sorted(split_dir.glob("*.json"))
    if not files:
        raise FileNotFoundError(f"{split_dir}: no labelme .json files")
    for image_id, path in enumerate(tqdm(files, desc=split_dir.name, unit="page"), start=1):
        try:
            page = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}: not valid JSON ({error})") from error
        image_name = Path(page.get("imagePath") or "").name
        if not (split_dir / image_name).is_file():
            candidates = [path.with_suffix(s) for s in IMAGE_SUFFIXES]
            found = [c for c in candidates if c.is_file()]
            if not found:
                raise FileNotFoundError(f"{path}: its image {image_name or path.stem} is missing")
            image_name = found[0].name
        width, height = int(page["imageWidth"]), int(page["imageHeight"])
        images.append({"id": image_id, "file_name": image_name, "width": width, "height": height})
        for shape in page.get("shapes", []):
            label = str(shape.get("label", "")).strip()
            if label.lower() not in class_ids:
                raise ValueError(f"{path}: unknown label '{label}' (CDLA has {list(CDLA_CLASSES)})")
            polygon = shape_polygon(shape, path)
            xs, ys = polygon[0::2], polygon[1::2]
            x, y, w, h = min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": class_ids[label.lower()],
                    "bbox": [x, y, w, h],
                    "area": w * h,
                    "segmentation": [polygon],
                    "iscrowd": 0,
                }
            )
    categories = [{"id": i, "name": name} for i, name in enumerate(CDLA_CLASSES, start=1)]
    return {"images": images, "annotations": annotations, "categories": categories}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cdla-root", required=True, type=Path)
    parser.add_argument("--out", type=Path, help="output folder (default: --cdla-root)")
    parser.add_argument("--splits", nargs="+", default=["train", "val"])
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    out = args.out or args.cdla_root
    out.mkdir(parents=True, exist_ok=True)
    for split in args.splits:
        try:
            coco = convert_split(args.cdla_root / split)
        except (OSError, ValueError, KeyError) as error:
            logger.error("error: %s", error)
            return 1
        target = out / f"{split}.json"
        write_json_atomic(target, coco)
        logger.info(
            "%s: %d images, %d boxes", target, len(coco["images"]), len(coco["annotations"])
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
