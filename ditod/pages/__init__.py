"""Pages: reading page images, collecting images and PDF pages, and OCR into one JSON per page.
Imports neither torch nor detectron2 (OCR worker processes start fast)."""

from .image_io import degenerate_page, read_page_image
from .ocr import ENGINES, EngineUnavailable, build_engine, run_ocr, run_ocr_jobs
from .page_inputs import PageInput, collect_pages

__all__ = [
    "ENGINES",
    "EngineUnavailable",
    "PageInput",
    "build_engine",
    "collect_pages",
    "degenerate_page",
    "read_page_image",
    "run_ocr",
    "run_ocr_jobs",
]
