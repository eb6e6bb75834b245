"""What an inference run writes: per page a JSON of detections and regions, an overlay PNG
and Markdown, the run's COCO files, and the summary of pages done, skipped, failed and worth a
word; and where the pages' text comes from (:class:`PageText`)."""

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image
from tqdm import tqdm

from ..cli import error_line
from ..file_io import atomic_path, printable, write_json_atomic, write_text_atomic
from ..pages.image_io import read_page_image
from ..pages.ocr_json import read_ocr_json
from ..pages.ocr_runner import PAGE_TIMEOUT, PageJob, run_ocr_jobs
from ..pages.page_inputs import PageInput
from .regions import merge_captions, page_markdown, page_regions
from .visualization import draw_detections

__all__ = [
    "OVERLAY_MAX_SIDE",
    "InferenceSummary",
    "PageOutputs",
    "PageText",
    "RunWriter",
    "page_detections",
    "page_notes",
]

logger = logging.getLogger(__name__)

# Longest side of an overlay PNG by default: a screen's worth.
OVERLAY_MAX_SIDE = 2000


@dataclass
class InferenceSummary:
    """``done``: pages detected; ``skipped``: pages an earlier run finished; ``failed``:
    ``(source, error message)`` of pages skipped for an error; ``notes``: pages done whose
    result may surprise, by kind (``no detection``, ``all OCR text dropped``, ``cut at the
    token cap``), each a list of ``(source, detail)``."""

    done: int = 0
    skipped: int = 0
    failed: list = field(default_factory=list)
    notes: dict = field(default_factory=dict)


# What to check, by kind of note, said once per run after the pages it concerns.
NOTE_ADVICE = {
    "no detection": "Check the score threshold (--score-threshold, MODEL.ROI_HEADS."
    "SCORE_THRESH_TEST), that MODEL.WEIGHTS is a trained model, and that it was trained on pages "
    "like these (a model trained on synthetic pages alone, as the demo's, misses much on real "
    "scans)",
    "all OCR text dropped": "Check the OCR JSON's boxes (tools/check_dataset.py names them)",
    "cut at the token cap": "Raise MODEL.LAYOUTLMV3.TEXT.MAX_TOKENS or lower "
    "TOKENS_PER_SEGMENT to keep every line's text; a model trained with TRUNCATION lines gives "
    "every line its first tokens instead of none to the last lines",
}


def page_notes(detections: list, text_status: dict | None) -> list[tuple[str, str]]:
    """``(kind, detail)`` of what a user should hear about a finished page."""
    notes = []
    if not detections:
        notes.append(("no detection", "no box above the score threshold"))
    if text_status:
        segments, dropped = text_status["segments"], text_status["dropped"]
        if segments and not text_status["tokens_kept"]:
            notes.append(
                ("all OCR text dropped", f"{dropped} of {segments} segments had unusable boxes")
            )
        if text_status["tokens_kept"] < text_status["tokens"]:
            kept, total = text_status["tokens_kept"], text_status["tokens"]
            notes.append(("cut at the token cap", f"kept {kept} of {total} tokens"))
    return notes


def page_detections(instances, class_names) -> list[dict]:
    """``Instances`` → ``[{"category", "category_id" (0-based, model order), "score",
    "bbox" [x0, y0, x1, y1] in page pixels}]``, highest score first."""
    boxes = instances.pred_boxes.tensor.tolist()
    found = []
    for box, c, s in zip(boxes, instances.pred_classes.tolist(), instances.scores.tolist()):
        found.append(
            {
                "category": class_names[c],
                "category_id": c,
                "score": round(s, 4),
                "bbox": [round(v, 2) for v in box],
            }
        )
    return sorted(found, key=lambda d: -d["score"])


def _save_png_atomic(image, path: Path) -> None:
    with atomic_path(path) as tmp:
        Image.fromarray(image).save(tmp, format="PNG")


@dataclass
class PageText:
    """Where an inference run's page text comes from: the OCR JSON under ``ocr_root`` when
    given, else written into ``<out>/ocr`` from each PDF page's text layer (``text_layer``) or
    by OCR (``engine``, ``workers`` processes, ``page_timeout`` s a page; on the Ray cluster at
    ``ray_address`` when given)."""

    ocr_root: str | None = None
    engine: str = "rapidocr"
    workers: int | None = None
    page_timeout: float | None = PAGE_TIMEOUT
    text_layer: bool = True
    ray_address: str | None = None

    def files(self, pages, out_dir: Path, needed: bool) -> dict:
        """Page name → its OCR JSON (written first where this run makes it); {} when no text
        is ``needed`` and no ``ocr_root`` given."""
        if not needed and not self.ocr_root:
            return {}
        root = Path(self.ocr_root) if self.ocr_root else out_dir / "ocr"
        files = {page.name: root / f"{page.name}.json" for page in pages}
        if not self.ocr_root:
            jobs = [
                PageJob(page.image, files[page.name], page.pdf, page.page_index) for page in pages
            ]
            run_ocr_jobs(
                jobs,
                out_dir / "ocr_failed.txt",
                self.engine,
                self.workers,
                self.page_timeout,
                text_layer=self.text_layer,
                ray_address=self.ray_address,
            )
        return files


def _finished(out_dir: Path, page: PageInput) -> dict | None:
    """The predictions JSON of a page an earlier run finished (its overlay written too)."""
    path = out_dir / "predictions" / f"{page.name}.json"
    if not (out_dir / "overlays" / f"{page.name}.png").is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and "detections" in record else None


@dataclass
class PageOutputs:
    """What :func:`run_inference` writes per page beyond detections, predictions JSON and
    overlay: the predictions' ``regions`` (reading order, text, roles: always, with text when
    the page has OCR JSON) with captions merged into their figures and tables
    (``merge_captions``, ``TEST.LAYOUT.MERGE_CAPTIONS``), ``markdown/<name>.md``, and the size
    of the overlay PNG: its longer side at most ``overlay_max_side`` pixels (0: the page's own
    size; drawing a 600-dpi scan at full size takes gigabytes)."""

    merge_captions: bool = False
    markdown: bool = False
    overlay_max_side: int = OVERLAY_MAX_SIDE

    @classmethod
    def from_config(
        cls, cfg, markdown: bool = False, overlay_max_side: int = OVERLAY_MAX_SIDE
    ) -> "PageOutputs":
        return cls(cfg.TEST.LAYOUT.MERGE_CAPTIONS, markdown, overlay_max_side)


class RunWriter:
    """Writes each page's outputs as its detections arrive, and the run's COCO files."""

    def __init__(
        self, out_dir: Path, pages: list[PageInput], class_names, outputs: PageOutputs | None = None
    ):
        self.out_dir, self.class_names = out_dir, class_names
        self.outputs = outputs or PageOutputs()
        self.ocr_files = {}
        self.records = {}
        self.summary = InferenceSummary()
        self.pending = []
        for page in pages:
            if record := _finished(out_dir, page):
                self.records[page.name] = record
                self.summary.skipped += 1
            else:
                self.pending.append(page)
        if self.summary.skipped:
            logger.info(
                "%d pages already done (predictions and overlay written), %d to detect",
                self.summary.skipped,
                len(self.pending),
            )
        self.pages = pages
        self.progress = tqdm(total=len(self.pending), unit="page", desc="detect")

    @classmethod
    def start(cls, out_dir, pages, class_names, outputs, text: PageText, uses_text: bool):
        """The writer of a run into ``out_dir``, with the text of its pending pages ready
        (what both the local and the Ray run set up)."""
        outputs = outputs or PageOutputs()
        writer = cls(Path(out_dir), pages, class_names, outputs)
        writer.ocr_files = text.files(writer.pending, Path(out_dir), uses_text or outputs.markdown)
        return writer

    def page_done(
        self,
        page: PageInput,
        width: int,
        height: int,
        detections: list,
        class_names=None,
        text_status: dict | None = None,
    ) -> None:
        """Write the page's outputs; a failure while writing them fails the page alone."""
        try:
            self._write_page(page, width, height, detections, class_names, text_status)
        except Exception as error:
            self.page_failed(page, error_line(error))
            return
        for kind, detail in page_notes(detections, text_status):
            self.summary.notes.setdefault(kind, []).append((page.source, detail))
        self.summary.done += 1
        self.progress.update()

    def _write_page(self, page, width, height, detections, class_names, text_status) -> None:
        self.class_names = self.class_names or class_names
        ocr_file = self.ocr_files.get(page.name)
        ocr_page = read_ocr_json(ocr_file) if ocr_file and Path(ocr_file).is_file() else None
        regions = page_regions(detections, width, ocr_page)
        if self.outputs.merge_captions:
            regions = merge_captions(regions)
        record = {
            "source": page.source,
            "image": printable(page.image),
            "width": width,
            "height": height,
            "detections": detections,
            "regions": regions,
        }
        if text_status is not None:
            record["text"] = text_status
        if self.outputs.markdown:
            write_text_atomic(self.out_dir / "markdown" / f"{page.name}.md", page_markdown(regions))
        page_image = read_page_image(page.image, max_side=self.outputs.overlay_max_side or None)
        scale = page_image.shape[1] / width
        overlay = draw_detections(page_image, detections, self.class_names, scale)
        write_json_atomic(self.out_dir / "predictions" / f"{page.name}.json", record)
        _save_png_atomic(overlay, self.out_dir / "overlays" / f"{page.name}.png")
        self.records[page.name] = record

    def page_failed(self, page: PageInput, error: str) -> None:
        self.summary.failed.append((page.source, error))
        logger.error("skipped %s: %s", page.source, error)
        self.progress.update()

    def finish(self) -> InferenceSummary:
        self.progress.close()
        for kind, pages in self.summary.notes.items():
            examples = "; ".join(f"{source} ({detail})" for source, detail in pages[:3])
            more = f"; and {len(pages) - 3} more" if len(pages) > 3 else ""
            logger.warning(
                "%d of %d pages with %s: %s%s. %s",
                len(pages),
                self.summary.done,
                kind,
                examples,
                more,
                NOTE_ADVICE[kind],
            )
        images, results = [], []
        for page in self.pages:
            record = self.records.get(page.name)
            if record is None:
                continue
            image_id = len(images) + 1
            images.append(
                {
                    "id": image_id,
                    "file_name": printable(page.image),
                    "width": record["width"],
                    "height": record["height"],
                }
            )
            for d in record["detections"]:
                x0, y0, x1, y1 = d["bbox"]
                results.append(
                    {
                        "image_id": image_id,
                        "category_id": d["category_id"] + 1,
                        "bbox": [x0, y0, round(x1 - x0, 2), round(y1 - y0, 2)],
                        "score": d["score"],
                    }
                )
        if self.class_names:
            categories = [{"id": i + 1, "name": n} for i, n in enumerate(self.class_names)]
        else:  # no page detected in this run: the categories an earlier run wrote
            categories = _earlier_categories(self.out_dir / "coco_pages.json")
        write_json_atomic(
            self.out_dir / "coco_pages.json", {"images": images, "categories": categories}
        )
        write_json_atomic(self.out_dir / "coco_instances_results.json", results)
        return self.summary


def _earlier_categories(path: Path) -> list:
    try:
        return json.loads(path.read_text(encoding="utf-8"))["categories"]
    except (OSError, ValueError, KeyError, TypeError):
        return []
