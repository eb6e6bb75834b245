"""Checks of a COCO layout dataset and its OCR JSON before training (``tools/check_dataset.py``).

The annotation file is read by the loader's own rules (:mod:`ditod.data.annotation_rules`): what
stops the loader is an error here, what it skips or fixes a warning saying so. Then the files
the loader does not open but training reads: images missing on disk or of another size than the
json says (errors), and the OCR JSON (unreadable or corner-format boxes: errors; pages without
OCR: an error under ``MISSING_OCR error``, a warning under ``image_only``; boxes outside the
page: warnings). :func:`check_config_datasets` checks the datasets of a config as training or
evaluation with it would read them: its OCR policy and tokenizer, its class count and the
classes of its ``MODEL.WEIGHTS``.
"""

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from detectron2.data import MetadataCatalog

from layoutlmv3.loading import load_checkpoint
from layoutlmv3.segments import box_values, describe_drops, usable_segments

from ..pages.image_io import page_size
from ..pages.ocr_json import read_ocr_json
from .annotation_rules import ERROR, read_coco
from .class_sets import check_class_sets, map_checkpoint_classes
from .datasets import default_ocr_root, register_layout_datasets
from .mapper import build_page_tokenizer

__all__ = ["DatasetReport", "check_config_datasets", "check_dataset"]


@dataclass
class DatasetReport:
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    class_counts: dict[str, int] = field(default_factory=dict)


def _check_ocr(path: Path, width, height, report: DatasetReport, tokens_per_segment=None):
    """The page's OCR JSON read as training reads it (:func:`read_ocr_json`, then the
    tokenizer's segment rules); boxes that look like corners [x0, y0, x1, y1] are an error."""
    try:
        page = read_ocr_json(path)
    except (OSError, ValueError) as error:
        report.errors.append(str(error))
        return
    engine = page.get("engine")
    read = engine.get("first_tokens", 0) if isinstance(engine, dict) else 0
    if read and tokens_per_segment is not None and not 0 < tokens_per_segment <= read:
        report.errors.append(
            f"{path}: OCR read only the first {read} tokens of each line (--first-tokens) but "
            f"TOKENS_PER_SEGMENT is {tokens_per_segment} (0: all): OCR again without "
            f"--first-tokens, or set TOKENS_PER_SEGMENT to 1..{read}"
        )
    ocr_w, ocr_h = page["W"], page["H"]
    overflowing, corners = 0, []
    for box in page["bbox"]:
        values = box_values(box)
        if values is None:
            continue
        x, y, w, h = values
        if x < -1 or y < -1 or x + w > ocr_w + 1 or y + h > ocr_h + 1:
            overflowing += 1
            if 0 <= x < w <= ocr_w + 1 and 0 <= y < h <= ocr_h + 1:  # inside as x0, y0, x1, y1
                corners.append(box)
    if overflowing and len(corners) * 2 >= overflowing:
        report.errors.append(
            f"{path}: {len(corners)} OCR boxes look like corners [x0, y0, x1, y1] (e.g. "
            f"{corners[0]}); the OCR JSON format is [x, y, w, h]: top-left corner, width, height"
        )
        return
    _, dropped = usable_segments(page)
    if dropped:
        report.warnings.append(f"{path}: {describe_drops(dropped, len(page['words']))}")
    if overflowing:
        report.warnings.append(
            f"{path}: {overflowing} OCR boxes run over the edge of the {ocr_w}x{ocr_h} page "
            "(clipped)"
        )


def check_dataset(
    json_file,
    image_root,
    ocr_root=None,
    check_ocr: bool = True,
    missing_ocr: str = "image_only",
    tokens_per_segment=None,
    mask_on: bool = False,
) -> DatasetReport:
    """Check one COCO json, its images and (with ``check_ocr``) their OCR JSON; pages without
    OCR JSON are an error under ``missing_ocr="error"`` (``MODEL.LAYOUTLMV3.TEXT.MISSING_OCR``),
    a warning under ``"image_only"``. With ``tokens_per_segment`` (the config's
    ``TOKENS_PER_SEGMENT``), first-token OCR that read fewer tokens per line is an error; with
    ``mask_on`` (``MODEL.MASK_ON``), a missing or malformed segmentation."""
    report = DatasetReport()
    json_file, image_root = Path(json_file), Path(image_root)
    ocr_root = Path(ocr_root) if ocr_root else default_ocr_root(image_root)
    try:
        coco = json.loads(json_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        report.errors.append(f"{json_file}: not a readable COCO json ({error})")
        return report
    read = read_coco(coco if isinstance(coco, dict) else {}, json_file, mask_on)
    for finding in read.findings:  # the loader's rules: errors stop it, the rest it skips/fixes
        (report.errors if finding.action == ERROR else report.warnings).append(finding.message)
    if any(finding.rule in ("not_coco", "malformed_entries") for finding in read.findings):
        return report
    images = coco["images"]

    pages_without_ocr = 0
    for image in images:
        path = image_root / image["file_name"]
        if not path.is_file():
            report.errors.append(f"{path}: image missing on disk")
            continue
        try:
            actual = page_size(path)
        except (OSError, ValueError) as error:
            report.errors.append(str(error))
            continue
        declared = (image.get("width"), image.get("height"))
        if actual != declared:
            report.errors.append(
                f"{path}: json says {declared[0]}x{declared[1]}, the file is "
                f"{actual[0]}x{actual[1]}"
            )
        if check_ocr:
            ocr_file = ocr_root / Path(image["file_name"]).with_suffix(".json")
            if ocr_file.is_file():
                _check_ocr(ocr_file, *declared, report, tokens_per_segment)
            else:
                pages_without_ocr += 1
    if pages_without_ocr and missing_ocr == "error":
        report.errors.append(
            f"{pages_without_ocr} pages without OCR JSON under {ocr_root}: with "
            "MODEL.LAYOUTLMV3.TEXT.MISSING_OCR error, training stops at the first (run "
            "tools/ocr_pages.py, or set MISSING_OCR image_only)"
        )
    elif pages_without_ocr:
        report.warnings.append(
            f"{pages_without_ocr} pages without OCR JSON under {ocr_root} (read as image-only "
            "pages)"
        )

    names = [category["name"] for category in read.categories]
    counts = Counter(r["category_id"] for records in read.annotations.values() for r in records)
    report.class_counts = {name: counts.get(index, 0) for index, name in enumerate(names)}
    return report


def check_config_datasets(cfg, names) -> DatasetReport:
    """What training or evaluation with ``cfg`` would make of the datasets ``names``
    (registered, built in, or in ``DATASETS.EXTRA``): each dataset checked with the config's OCR
    policy (OCR only for text models), then the class sets (datasets vs
    ``MODEL.ROI_HEADS.NUM_CLASSES`` vs the classes of ``MODEL.WEIGHTS``) and the tokenizer
    against the model's vocabulary. Messages name the dataset."""
    report = DatasetReport()
    register_layout_datasets(cfg, names)
    uses_text = not cfg.MODEL.LAYOUTLMV3.IMAGE_ONLY
    for name in names:
        metadata = MetadataCatalog.get(name)
        if not metadata.get("json_file", None):
            report.warnings.append(f"[{name}] registered without a COCO json: not checked")
            continue
        text = cfg.MODEL.LAYOUTLMV3.TEXT
        checked = check_dataset(
            metadata.json_file,
            metadata.image_root,
            metadata.get("ocr_root", None),
            check_ocr=uses_text,
            missing_ocr=text.MISSING_OCR,
            tokens_per_segment=text.TOKENS_PER_SEGMENT,
            mask_on=cfg.MODEL.MASK_ON,
        )
        report.errors += [f"[{name}] {message}" for message in checked.errors]
        report.warnings += [f"[{name}] {message}" for message in checked.warnings]
        for cls, count in checked.class_counts.items():
            report.class_counts[cls] = report.class_counts.get(cls, 0) + count
    try:
        classes = check_class_sets(cfg, names)
        weights = Path(cfg.MODEL.WEIGHTS) if cfg.MODEL.WEIGHTS else None
        if weights is not None and weights.is_file() and weights.suffix == ".pth":
            checkpoint_classes = (load_checkpoint(weights) or {}).get("class_names")
            if checkpoint_classes:
                map_checkpoint_classes(
                    checkpoint_classes, classes, cfg.MODEL.CLASS_MAPPING, source=str(weights)
                )
    except ValueError as error:
        report.errors.append(str(error))
    if uses_text:
        try:
            build_page_tokenizer(cfg)
        except (OSError, ValueError) as error:
            report.errors.append(str(error))
    return report
