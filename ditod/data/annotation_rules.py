"""The rules a COCO layout annotation file is read by, in one place.

The loader (:func:`ditod.data.datasets.load_layout_coco_json`) applies them and the checker
(:func:`ditod.data.dataset_check.check_dataset`) reports them, each finding with what the loader
does:

| rule | action |
|---|---|
| no ``images`` / ``annotations`` / ``categories`` list | error |
| an entry that is not an object, or lacks a field (:data:`ENTRY_FIELDS`) | error |
| duplicate category, image or annotation ids | error (COCO evaluation indexes them by id) |
| one image file listed under two image ids | error (its boxes would count twice in AP) |
| a background category (``_background_``) with annotations | error |
| a background category without annotations | fix: dropped |
| category ids 0-based or with gaps | fix: mapped to 0..K-1 |
| an annotation of an unknown category | error |
| a malformed bbox (not 4 finite numbers) | error |
| an annotation of an unknown image | skip, counted |
| a box of zero area, of negative size, or wholly outside its image | skip, counted |
| a box partly outside its image | fix: clipped |
| no ``area`` / ``iscrowd`` in an annotation | fix: evaluation computes COCO's area, iscrowd 0 |
| a malformed segmentation | error under ``MODEL.MASK_ON``, else ignored |
| a (non-crowd) annotation without a segmentation | error under ``MODEL.MASK_ON`` |

Pure Python (no detectron2, no torch).
"""

import math
from collections import Counter
from dataclasses import dataclass, field

__all__ = [
    "BACKGROUND_NAMES",
    "ENTRY_FIELDS",
    "ERROR",
    "EVALUATION_KEYS",
    "FIX",
    "SKIP",
    "CocoRead",
    "Finding",
    "duplicate_ids",
    "entry_problems",
    "layout_categories",
    "read_coco",
    "segmentation_problem",
]

ERROR, SKIP, FIX = "error", "skip", "fix"  # the loader raises / skips and counts / corrects
BACKGROUND_NAMES = ("_background_", "__background__", "background")
EVALUATION_KEYS = ("area", "iscrowd")  # what COCO evaluation reads and a valid file may leave out


@dataclass
class Finding:
    """One rule that applied: ``action`` is what the loader does, ``message`` names the file."""

    rule: str
    action: str
    message: str


@dataclass
class CocoRead:
    """A COCO dict read by the rules.

    Attributes:
        categories: the layout categories, in id order.
        id_map: category id → contiguous class index.
        annotations: image id → the image's usable annotations as
            ``{"bbox": [x, y, w, h] clipped to the image, "category_id": class index,
            "iscrowd", "segmentation" (polygons or an RLE dict, when valid)}``.
        findings: every rule that applied.
        without_mask: usable non-crowd annotations with no valid segmentation.
        rle_masks: usable annotations whose segmentation is an RLE dict.
    """

    categories: list = field(default_factory=list)
    id_map: dict = field(default_factory=dict)
    annotations: dict = field(default_factory=dict)
    findings: list = field(default_factory=list)
    without_mask: int = 0
    rle_masks: int = 0

    @property
    def errors(self) -> list[str]:
        return [f.message for f in self.findings if f.action == ERROR]


def duplicate_ids(ids) -> list:
    """The ids that occur more than once, sorted."""
    return sorted(i for i, n in Counter(ids).items() if n > 1)


def layout_categories(categories: list[dict]) -> list[dict]:
    """The layout classes of a COCO ``categories`` list, in id order: background categories
    (CDLA's labelme2coco ``_background_``) are not classes."""
    return [
        c
        for c in sorted(categories, key=lambda c: c["id"])
        if c["name"].strip().lower() not in BACKGROUND_NAMES
    ]


def _is_id(value) -> bool:
    return isinstance(value, int | str) and not isinstance(value, bool)


def _is_size(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and 0 < value < 1e9


# what each entry of the three lists needs for the rules below to read it
ENTRY_FIELDS = {
    "images": {"id": _is_id, "file_name": lambda v: isinstance(v, str) and v, "width": _is_size,
               "height": _is_size},
    "categories": {"id": lambda v: isinstance(v, int) and not isinstance(v, bool),
                   "name": lambda v: isinstance(v, str)},
    "annotations": {"id": _is_id, "image_id": _is_id, "category_id": _is_id},
}  # fmt: skip


def entry_problems(coco: dict) -> list[str]:
    """``images[3]: 'width' is missing`` for every entry of the three lists that is not an object
    or lacks a field the rules read (or holds a value of the wrong kind)."""
    problems = []
    for key, fields in ENTRY_FIELDS.items():
        for index, entry in enumerate(coco[key]):
            if not isinstance(entry, dict):
                problems.append(f"{key}[{index}] is a {type(entry).__name__}, not an object")
                continue
            for name, valid in fields.items():
                if name not in entry:
                    problems.append(f"{key}[{index}] has no '{name}'")
                elif not valid(entry[name]):
                    problems.append(f"{key}[{index}] has '{name}': {entry[name]!r}")
    return problems


def _valid_box(bbox) -> bool:
    return (
        isinstance(bbox, list | tuple)
        and len(bbox) == 4
        and all(isinstance(v, int | float) and math.isfinite(v) for v in bbox)
    )


def segmentation_problem(segmentation) -> str | None:
    """What makes a COCO ``segmentation`` unusable as a mask, or None: polygons are a list of
    flat ``[x0, y0, x1, y1, ...]`` lists of >= 3 points, an RLE a dict with ``counts`` and
    ``size`` [height, width]."""
    if isinstance(segmentation, dict):
        missing = [key for key in ("counts", "size") if key not in segmentation]
        return f"an RLE without {' and '.join(repr(k) for k in missing)}" if missing else None
    if not isinstance(segmentation, list) or not segmentation:
        return f"a {type(segmentation).__name__}, not polygons or an RLE"
    for polygon in segmentation:
        if not isinstance(polygon, list) or not all(
            isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
            for v in polygon
        ):
            return "a polygon that is not a flat list of numbers"
        if len(polygon) % 2:
            return f"an odd-length polygon ({len(polygon)} numbers)"
        if len(polygon) < 6:
            return f"a polygon of {len(polygon) // 2} points (3 at least)"
    return None


def read_coco(coco: dict, json_file, mask_on: bool = False) -> CocoRead:
    """Apply every rule to the parsed COCO json ``coco`` (from ``json_file``, named in the
    messages); nothing is raised here: errors are findings. ``mask_on`` (``MODEL.MASK_ON``):
    segmentations are needed, and a missing or malformed one is an error."""
    read = CocoRead()

    def finding(rule, action, message):
        read.findings.append(Finding(rule, action, f"{json_file}: {message}"))

    for key in ("images", "annotations", "categories"):
        if not isinstance(coco.get(key), list):
            finding("not_coco", ERROR, f"no '{key}' list; is this a COCO instances file?")
    if read.findings:
        return read
    problems = entry_problems(coco)
    if problems:
        more = f" and {len(problems) - 5} more" if len(problems) > 5 else ""
        finding("malformed_entries", ERROR, "; ".join(problems[:5]) + more)
        return read
    for kind, items in (
        ("category", coco["categories"]),
        ("image", coco["images"]),
        ("annotation", coco["annotations"]),
    ):
        duplicates = duplicate_ids(item.get("id") for item in items)
        if duplicates:
            finding(f"duplicate_{kind}_ids", ERROR, f"duplicate {kind} ids {duplicates[:10]}")

    used = Counter(a.get("category_id") for a in coco["annotations"])
    read.categories = layout_categories(coco["categories"])
    for category in coco["categories"]:
        if category in read.categories:
            continue
        if used[category["id"]]:
            count = used[category["id"]]
            finding(
                "background_with_boxes",
                ERROR,
                f"category {category['id']} "
                f"'{category['name']}' has {count} annotations; a background class cannot be "
                "detected",
            )
        else:
            finding(
                "background_dropped",
                FIX,
                f"dropped category {category['id']} "
                f"'{category['name']}' (a background class without annotations)",
            )
    read.id_map = {c["id"]: i for i, c in enumerate(read.categories)}
    if list(read.id_map) != list(range(1, len(read.id_map) + 1)):
        finding(
            "category_ids_remapped",
            FIX,
            f"category ids {list(read.id_map)} are 0-based or "
            f"not contiguous (mapped to 0..{len(read.id_map) - 1} on load)",
        )

    files = Counter(image.get("file_name") for image in coco["images"])
    listed_twice = sorted(str(name) for name, n in files.items() if n > 1)
    if listed_twice:
        finding(
            "duplicate_file_names",
            ERROR,
            f"{len(listed_twice)} image files listed under more than one image id (e.g. "
            f"{listed_twice[0]}): their boxes would count twice in evaluation",
        )

    images = {image.get("id"): image for image in coco["images"]}
    read.annotations = {image_id: [] for image_id in images}
    skipped, clipped, bad_masks, missing_masks = Counter(), 0, [], 0
    for ann in coco["annotations"]:
        image = images.get(ann.get("image_id"))
        category = ann.get("category_id")
        if category not in read.id_map:
            finding(
                "unknown_category",
                ERROR,
                f"annotation {ann.get('id')} has unknown "
                f"category_id {category} (categories: {list(read.id_map)})",
            )
            continue
        if not _valid_box(ann.get("bbox")):
            bbox = ann.get("bbox")
            finding(
                "malformed_bbox", ERROR, f"annotation {ann.get('id')} has a malformed bbox {bbox}"
            )
            continue
        if image is None:
            skipped["unknown image id"] += 1
            continue
        x, y, w, h = ann["bbox"]
        x0, y0 = max(x, 0), max(y, 0)
        x1, y1 = min(x + w, image["width"]), min(y + h, image["height"])
        if w < 0 or h < 0:
            skipped["negative size"] += 1
            continue
        if w == 0 or h == 0:
            skipped["zero area"] += 1
            continue
        if x1 <= x0 or y1 <= y0:
            skipped["outside the image"] += 1
            continue
        clipped += (x0, y0, x1, y1) != (x, y, x + w, y + h)
        # floats: detectron2's transforms scale coordinate arrays in place, truncating ints
        record = {
            "bbox": [float(x0), float(y0), float(x1 - x0), float(y1 - y0)],
            "iscrowd": ann.get("iscrowd", 0),
            "category_id": read.id_map[ann["category_id"]],
        }
        segmentation = ann.get("segmentation")
        problem = None if segmentation is None else segmentation_problem(segmentation)
        if segmentation is None or problem:
            if not record["iscrowd"]:  # crowd regions are not trained on
                read.without_mask += 1
                missing_masks += segmentation is None
            if problem:
                bad_masks.append(f"annotation {ann.get('id')} has {problem}")
        elif isinstance(segmentation, dict):
            record["segmentation"] = segmentation
            read.rle_masks += 1
        else:
            record["segmentation"] = [[float(v) for v in p] for p in segmentation]
        read.annotations[image["id"]].append(record)
    if skipped:
        finding(
            "skipped_annotations",
            SKIP,
            "skipped annotations: " + ", ".join(f"{n} {reason}" for reason, n in skipped.items()),
        )
    if clipped:
        finding("clipped_boxes", FIX, f"{clipped} annotations partly outside their image (clipped)")
    if bad_masks:
        finding(
            "malformed_segmentation",
            ERROR if mask_on else FIX,
            f"{len(bad_masks)} malformed segmentations ({'; '.join(bad_masks[:3])})"
            + ("" if mask_on else "; ignored: the model has no mask head (MODEL.MASK_ON False)"),
        )
    if mask_on and missing_masks:
        finding(
            "missing_segmentation",
            ERROR,
            f"MODEL.MASK_ON is True but {missing_masks} of "
            f"{sum(map(len, read.annotations.values()))} annotations have no segmentation: "
            "set MODEL.MASK_ON False to train boxes only, or add masks",
        )
    missing = {key: sum(key not in ann for ann in coco["annotations"]) for key in EVALUATION_KEYS}
    if any(missing.values()):
        said = {
            "area": "no 'area' (evaluation computes it as COCO defines it: the segmentation's "
            "area, else the box's)",
            "iscrowd": "no 'iscrowd' (taken as 0)",
        }
        finding(
            "evaluation_fields_filled",
            FIX,
            "; ".join(f"{n} annotations have {said[key]}" for key, n in missing.items() if n),
        )
    return read
