"""An inference run over pages: OCR where the model reads text, detection in batches, and per
page a JSON of detections and an overlay PNG, plus COCO files for the whole run."""

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image
from tqdm import tqdm

from ..pages.image_io import read_page_image
from ..pages.ocr import PAGE_TIMEOUT, run_ocr_jobs, write_json_atomic
from ..pages.page_inputs import PageInput
from .predictor import LayoutPredictor
from .visualization import draw_detections

__all__ = ["InferenceSummary", "page_detections", "run_inference"]

logger = logging.getLogger(__name__)


@dataclass
class InferenceSummary:
    done: int = 0
    failed: list = field(default_factory=list)  # (source, error message)


def page_detections(instances, class_names) -> list[dict]:
    """``Instances`` → ``[{"category", "category_id" (0-based, model order), "score",
    "bbox" [x0, y0, x1, y1] in page pixels}]``, highest score first."""
    boxes = instances.pred_boxes.tensor.tolist()
    found = []
    for box, c, s in zip(boxes, instances.pred_classes.tolist(), instances.scores.tolist()):
        found.append({"category": class_names[c], "category_id": c, "score": round(s, 4),
                      "bbox": [round(v, 2) for v in box]})  # fmt: skip
    return sorted(found, key=lambda d: -d["score"])


def _save_png_atomic(image, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    Image.fromarray(image).save(tmp, format="PNG")
    os.replace(tmp, path)


def _ocr_files(predictor, pages, out_dir: Path, ocr_root, engine: str, workers: int,
               page_timeout) -> dict:  # fmt: skip
    """Page name → its OCR JSON: under ``ocr_root`` when given, else OCR'd into ``out/ocr``."""
    if not predictor.uses_text:
        return {}
    root = Path(ocr_root) if ocr_root else out_dir / "ocr"
    files = {page.name: root / f"{page.name}.json" for page in pages}
    if not ocr_root:
        jobs = [(page.image, files[page.name]) for page in pages]
        run_ocr_jobs(jobs, out_dir / "ocr_failed.txt", engine, workers, page_timeout)
    return files


def run_inference(predictor: LayoutPredictor, pages: list[PageInput], out_dir, *,
                  batch_size: int = 1, ocr_root=None, ocr_engine: str = "rapidocr",
                  ocr_workers: int = 1,
                  ocr_page_timeout=PAGE_TIMEOUT) -> InferenceSummary:  # fmt: skip
    """Detect on ``pages`` and write into ``out_dir``:

    - ``predictions/<name>.json``: source, page size and detections (:func:`page_detections`);
    - ``overlays/<name>.png``: the page with its detections drawn;
    - ``coco_instances_results.json`` (COCO results: image ids 1.. in page order, category ids
      1..K in model order) and ``coco_pages.json`` (their ``images`` and ``categories``);
    - ``ocr/<name>.json`` for a text-reading model when ``ocr_root`` is not given.

    A page that cannot be read (image, OCR JSON) is logged, counted and skipped.
    """
    out_dir = Path(out_dir)
    summary = InferenceSummary()
    ocr_files = _ocr_files(predictor, pages, out_dir, ocr_root, ocr_engine, ocr_workers,
                           ocr_page_timeout)  # fmt: skip
    images, results = [], []
    progress = tqdm(total=len(pages), unit="page", desc="detect")
    for start in range(0, len(pages), batch_size):
        batch, inputs = [], []
        for page in pages[start : start + batch_size]:
            try:
                inputs.append(predictor.map_page(page.image, ocr_files.get(page.name)))
                batch.append(page)
            except (OSError, ValueError) as error:
                summary.failed.append((page.source, str(error)))
                logger.error("skipped %s: %s", page.source, error)
        for page, mapped, instances in zip(batch, inputs, predictor(inputs) if inputs else []):
            detections = page_detections(instances, predictor.class_names)
            height, width = mapped["height"], mapped["width"]
            write_json_atomic(
                out_dir / "predictions" / f"{page.name}.json",
                {"source": page.source, "image": str(page.image), "width": width,
                 "height": height, "detections": detections},
            )  # fmt: skip
            page_image = read_page_image(page.image, format="RGB")
            overlay = draw_detections(page_image, instances, predictor.class_names)
            _save_png_atomic(overlay, out_dir / "overlays" / f"{page.name}.png")
            image_id = len(images) + 1
            images.append({"id": image_id, "file_name": str(page.image), "width": width,
                           "height": height})  # fmt: skip
            for d in detections:
                x0, y0, x1, y1 = d["bbox"]
                results.append({"image_id": image_id, "category_id": d["category_id"] + 1,
                                "bbox": [x0, y0, round(x1 - x0, 2), round(y1 - y0, 2)],
                                "score": d["score"]})  # fmt: skip
            summary.done += 1
        progress.update(len(pages[start : start + batch_size]))
    progress.close()
    categories = [{"id": i + 1, "name": n} for i, n in enumerate(predictor.class_names)]
    write_json_atomic(out_dir / "coco_pages.json", {"images": images, "categories": categories})
    write_json_atomic(out_dir / "coco_instances_results.json", results)
    return summary
