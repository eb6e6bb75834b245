"""COCO layout datasets with a per-page OCR JSON: loading, checks and registration by config.

Built-in names (``publaynet_{train,val}``, ``cdla_{train,val}``, ``doclaynet_{train,val,test}``)
resolve under a data root: ``DATASETS.ROOT``, else ``$DITOD_DATASETS``, else ``./data``. Any other
dataset is declared in YAML as ``DATASETS.EXTRA: [[name, json_file, image_root, ocr_root], ...]``.
The OCR JSON of ``<image_root>/<file_name>`` is ``<ocr_root>/<file_name minus suffix>.json``;
``ocr_root`` defaults to the image folder's sibling ``OCR/`` (the seed's layout).
"""

import difflib
import json
import logging
import math
import mmap
import os
from collections import Counter
from pathlib import Path

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import BoxMode

__all__ = [
    "BUILTIN_DATASETS",
    "dataset_root",
    "duplicate_ids",
    "layout_categories",
    "load_layout_coco_json",
    "read_categories",
    "register_layout_dataset",
    "register_layout_datasets",
]

logger = logging.getLogger(__name__)

# name → (json file, image folder), relative to the data root.
BUILTIN_DATASETS = {
    "publaynet_train": ("publaynet/train.json", "publaynet/train"),
    "publaynet_val": ("publaynet/val.json", "publaynet/val"),
    "cdla_train": ("CDLA/train.json", "CDLA/train"),
    "cdla_val": ("CDLA/val.json", "CDLA/val"),
    "doclaynet_train": ("DocLayNet_core/COCO/train.json", "DocLayNet_core/PNG"),
    "doclaynet_val": ("DocLayNet_core/COCO/val.json", "DocLayNet_core/PNG"),
    "doclaynet_test": ("DocLayNet_core/COCO/test.json", "DocLayNet_core/PNG"),
}
BACKGROUND_NAMES = ("_background_", "__background__", "background")


def dataset_root(cfg=None) -> Path:
    """Root of the built-in datasets: ``DATASETS.ROOT``, ``$DITOD_DATASETS`` or ``./data``."""
    if cfg is not None and cfg.DATASETS.ROOT:
        return Path(cfg.DATASETS.ROOT)
    return Path(os.environ.get("DITOD_DATASETS", "data"))


def default_ocr_root(image_root) -> Path:
    return Path(image_root).parent / "OCR"


def layout_categories(categories: list[dict]) -> list[dict]:
    """The layout classes of a COCO ``categories`` list, in id order: background categories
    (CDLA's labelme2coco ``_background_``) are not classes."""
    return [
        c for c in sorted(categories, key=lambda c: c["id"])
        if c["name"].strip().lower() not in BACKGROUND_NAMES
    ]  # fmt: skip


def _is_category_list(value) -> bool:
    return isinstance(value, list) and all(
        isinstance(c, dict) and "id" in c and "name" in c for c in value
    )


def read_categories(json_file) -> list[dict]:
    """The ``categories`` of a COCO json without parsing its images and annotations (PubLayNet's
    train json is over a gigabyte): the last ``"categories":`` key is decoded where it stands,
    and the whole file is parsed only if that is not a list of ``{id, name}``."""
    json_file = Path(json_file)
    try:
        with open(json_file, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
            at = data.rfind(b'"categories"')
            if at >= 0:
                colon = data.find(b":", at) + 1
                text = data[colon : colon + (1 << 20)].decode("utf-8", errors="replace")
                try:
                    value, _ = json.JSONDecoder().raw_decode(text.lstrip())
                    if _is_category_list(value):
                        return value
                except ValueError:
                    pass
    except FileNotFoundError as error:
        raise FileNotFoundError(f"{json_file}: COCO json not found") from error
    except ValueError:  # an empty file cannot be mapped
        pass
    try:
        categories = json.loads(json_file.read_text(encoding="utf-8")).get("categories")
    except (ValueError, AttributeError) as error:
        raise ValueError(f"{json_file}: not a COCO json ({error})") from error
    if not _is_category_list(categories):
        raise ValueError(f"{json_file}: no 'categories' list of {{id, name}}")
    return categories


def _valid_box(bbox) -> bool:
    return (
        isinstance(bbox, list | tuple)
        and len(bbox) == 4
        and all(isinstance(v, int | float) and math.isfinite(v) for v in bbox)
    )


def load_layout_coco_json(json_file, image_root, ocr_root=None, dataset_name=None) -> list[dict]:
    """Dataset dicts of a COCO json, each with the path of its page's OCR JSON (``ocr_file``).

    Category ids of any numbering (0-based, gaps) map to contiguous 0..K-1 in id order; a
    ``_background_`` category without annotations (CDLA's labelme2coco) is dropped. Boxes are
    clipped to the image; annotations with zero area or outside the image are skipped, counted and
    logged. Duplicate image or category ids, unknown categories and broken boxes raise, naming the
    file and the ids.
    """
    json_file = Path(json_file)
    ocr_root = Path(ocr_root) if ocr_root else default_ocr_root(image_root)
    try:
        with open(json_file, encoding="utf-8") as f:
            coco = json.load(f)
    except FileNotFoundError as error:
        raise FileNotFoundError(f"{json_file}: COCO json not found") from error
    except json.JSONDecodeError as error:
        raise ValueError(f"{json_file}: not valid JSON ({error})") from error
    for key in ("images", "annotations", "categories"):
        if not isinstance(coco.get(key), list):
            raise ValueError(f"{json_file}: no '{key}' list; is this a COCO instances file?")

    duplicate_categories = duplicate_ids(c["id"] for c in coco["categories"])
    if duplicate_categories:
        raise ValueError(f"{json_file}: duplicate category ids {duplicate_categories}")
    used = Counter(a.get("category_id") for a in coco["annotations"])
    categories = layout_categories(coco["categories"])
    for category in coco["categories"]:
        if category in categories:
            continue
        if used[category["id"]]:
            raise ValueError(
                f"{json_file}: category {category['id']} '{category['name']}' has "
                f"{used[category['id']]} annotations; a background class cannot be detected"
            )
        logger.warning(
            "%s: dropped category %d '%s' (no annotations; not a layout class)",
            json_file, category["id"], category["name"],
        )  # fmt: skip
    id_map = {c["id"]: i for i, c in enumerate(categories)}
    if [c["id"] for c in categories] != list(range(1, len(categories) + 1)):
        logger.info(
            "%s: category ids %s mapped to contiguous 0..%d",
            json_file, list(id_map), len(categories) - 1,
        )  # fmt: skip

    duplicate_images = duplicate_ids(image["id"] for image in coco["images"])
    if duplicate_images:
        raise ValueError(f"{json_file}: duplicate image ids {duplicate_images[:10]}")
    images = {image["id"]: image for image in coco["images"]}
    per_image = {image_id: [] for image_id in images}
    skipped = Counter()
    for ann in coco["annotations"]:
        image = images.get(ann.get("image_id"))
        if image is None:
            skipped["unknown image id"] += 1
            continue
        if ann.get("category_id") not in id_map:
            raise ValueError(
                f"{json_file}: annotation {ann.get('id')} has category_id "
                f"{ann.get('category_id')}, which is not among the categories {list(id_map)}"
            )
        if not _valid_box(ann.get("bbox")):
            raise ValueError(
                f"{json_file}: annotation {ann.get('id')} has a malformed bbox {ann.get('bbox')}"
            )
        x, y, w, h = ann["bbox"]
        x0, y0 = max(x, 0), max(y, 0)
        x1, y1 = min(x + w, image["width"]), min(y + h, image["height"])
        if w <= 0 or h <= 0:
            skipped["zero area"] += 1
            continue
        if x1 <= x0 or y1 <= y0:
            skipped["outside the image"] += 1
            continue
        record = {
            "bbox": [x0, y0, x1 - x0, y1 - y0],
            "bbox_mode": BoxMode.XYWH_ABS,
            "category_id": id_map[ann["category_id"]],
            "iscrowd": ann.get("iscrowd", 0),
        }
        polygons = [p for p in ann.get("segmentation") or [] if isinstance(p, list) and len(p) >= 6]
        if polygons:
            record["segmentation"] = polygons
        per_image[image["id"]].append(record)
    if skipped:
        logger.warning(
            "%s: skipped annotations: %s",
            json_file, ", ".join(f"{n} {reason}" for reason, n in skipped.items()),
        )  # fmt: skip

    dataset_dicts = []
    for image_id, image in images.items():
        relative = Path(image["file_name"])
        dataset_dicts.append(
            {
                "file_name": str(Path(image_root) / relative),
                "height": image["height"],
                "width": image["width"],
                "image_id": image_id,
                "annotations": per_image[image_id],
                "ocr_file": str(ocr_root / relative.with_suffix(".json")),
            }
        )
    logger.info(
        "%s: %d images, %d annotations, %d classes",
        json_file, len(dataset_dicts), sum(len(v) for v in per_image.values()), len(categories),
    )  # fmt: skip
    if dataset_name is not None:
        MetadataCatalog.get(dataset_name).set(
            thing_classes=[c["name"] for c in categories],
            thing_dataset_id_to_contiguous_id=id_map,
        )
    return dataset_dicts


def duplicate_ids(ids) -> list:
    """The ids that occur more than once, sorted."""
    return sorted(i for i, n in Counter(ids).items() if n > 1)


def register_layout_dataset(name: str, json_file, image_root, ocr_root=None) -> None:
    """Register one COCO layout dataset (lazy: the json is read on first use)."""
    ocr_root = str(ocr_root) if ocr_root else str(default_ocr_root(image_root))
    DatasetCatalog.register(
        name, lambda: load_layout_coco_json(json_file, image_root, ocr_root, name)
    )
    MetadataCatalog.get(name).set(
        json_file=str(json_file),
        image_root=str(image_root),
        ocr_root=ocr_root,
        evaluator_type="coco",
    )


def register_layout_datasets(cfg, names=None) -> None:
    """Register ``DATASETS.EXTRA`` and the built-in datasets among ``names`` (default:
    ``DATASETS.TRAIN`` and ``DATASETS.TEST``; evaluation passes only the test sets).

    A name that is neither registered, built in nor declared raises, listing close matches.
    """
    for entry in cfg.DATASETS.EXTRA:
        if len(entry) not in (3, 4):
            raise ValueError(
                f"DATASETS.EXTRA entry {entry} must be [name, json_file, image_root, ocr_root] "
                "(ocr_root may be left out or empty)"
            )
        name, json_file, image_root, *ocr_root = entry
        if name not in DatasetCatalog.list():
            register_layout_dataset(name, json_file, image_root, (ocr_root or [None])[0])
    root = dataset_root(cfg)
    for name in names if names is not None else (*cfg.DATASETS.TRAIN, *cfg.DATASETS.TEST):
        if name in DatasetCatalog.list():
            continue
        if name in BUILTIN_DATASETS:
            json_file, image_root = BUILTIN_DATASETS[name]
            register_layout_dataset(name, root / json_file, root / image_root)
            continue
        known = sorted({*BUILTIN_DATASETS, *DatasetCatalog.list()})
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ValueError(
            f"dataset '{name}' is not registered, built in, nor declared in DATASETS.EXTRA.{hint} "
            f"Built-in: {', '.join(sorted(BUILTIN_DATASETS))}"
        )
