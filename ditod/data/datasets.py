"""COCO layout datasets with a per-page OCR JSON: loading, checks and registration by config.

Built-in names (``publaynet_{train,val}``, ``cdla_{train,val}``, ``doclaynet_{train,val,test}``)
resolve under a data root: ``DATASETS.ROOT``, else ``$DITOD_DATASETS``, else ``./data``. Any other
dataset is declared in YAML as ``DATASETS.EXTRA: [[name, json_file, image_root, ocr_root], ...]``.
The OCR JSON of ``<image_root>/<file_name>`` is ``<ocr_root>/<file_name minus suffix>.json``;
``ocr_root`` defaults to the image folder's sibling ``OCR/``.
"""

import difflib
import json
import logging
import mmap
import os
from pathlib import Path

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import BoxMode

from .annotation_rules import duplicate_ids, layout_categories, read_coco

__all__ = [
    "BUILTIN_DATASETS",
    "check_mask_annotations",
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


def dataset_root(cfg=None) -> Path:
    """Root of the built-in datasets: ``DATASETS.ROOT``, ``$DITOD_DATASETS`` or ``./data``."""
    if cfg is not None and cfg.DATASETS.ROOT:
        return Path(cfg.DATASETS.ROOT)
    return Path(os.environ.get("DITOD_DATASETS", "data"))


def default_ocr_root(image_root) -> Path:
    return Path(image_root).parent / "OCR"


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


def load_layout_coco_json(json_file, image_root, ocr_root=None, dataset_name=None) -> list[dict]:
    """Dataset dicts of a COCO json, each with the path of its page's OCR JSON (``ocr_file``),
    read by the rules of :mod:`ditod.data.annotation_rules`: what they call an error raises
    (naming the file and the ids), what they skip or fix is logged and counted."""
    json_file = Path(json_file)
    ocr_root = Path(ocr_root) if ocr_root else default_ocr_root(image_root)
    try:
        with open(json_file, encoding="utf-8") as f:
            coco = json.load(f)
    except FileNotFoundError as error:
        raise FileNotFoundError(f"{json_file}: COCO json not found") from error
    except json.JSONDecodeError as error:
        raise ValueError(f"{json_file}: not valid JSON ({error})") from error
    read = read_coco(coco if isinstance(coco, dict) else {}, json_file)
    if read.errors:
        raise ValueError("\n".join(read.errors[:10]))
    for finding in read.findings:  # what the rules skipped or fixed
        level = logging.INFO if finding.rule == "category_ids_remapped" else logging.WARNING
        logger.log(level, finding.message)
    categories, id_map = read.categories, read.id_map
    images = {image["id"]: image for image in coco["images"]}
    per_image = {
        image_id: [{**record, "bbox_mode": BoxMode.XYWH_ABS} for record in records]
        for image_id, records in read.annotations.items()
    }

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
        json_file,
        len(dataset_dicts),
        sum(len(v) for v in per_image.values()),
        len(categories),
    )
    if dataset_name is not None:
        MetadataCatalog.get(dataset_name).set(
            thing_classes=[c["name"] for c in categories],
            thing_dataset_id_to_contiguous_id=id_map,
            annotations_without_mask=read.without_mask,
            rle_masks=read.rle_masks,
        )
    return dataset_dicts


def check_mask_annotations(cfg, names) -> None:
    """Under ``MODEL.MASK_ON``, every (non-crowd) training annotation of the datasets ``names``
    (loaded) needs a valid segmentation, and RLE masks need ``INPUT.MASK_FORMAT bitmask``: one
    error naming the key and the dataset, before training starts."""
    if not cfg.MODEL.MASK_ON:
        return
    for name in names:
        metadata = MetadataCatalog.get(name)
        source = metadata.get("json_file", name)
        missing = metadata.get("annotations_without_mask", 0)
        if missing:
            raise ValueError(
                f"MODEL.MASK_ON is True but dataset '{name}' ({source}) has {missing} "
                "annotations without a valid segmentation: set MODEL.MASK_ON False to train "
                "boxes only, or add masks (tools/check_dataset.py --config-file names them)"
            )
        if metadata.get("rle_masks", 0) and cfg.INPUT.MASK_FORMAT != "bitmask":
            raise ValueError(
                f"dataset '{name}' ({source}) has RLE segmentations: set INPUT.MASK_FORMAT "
                "bitmask (polygon reads only polygons)"
            )


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
