"""Pages: page image files, PDFs and their text layer, OCR engines, OCR runs and the page-text
JSON they write. Imports neither torch nor detectron2 (OCR worker processes start fast)."""

from .engines import ENGINES, EngineUnavailable, build_engine, register_engine
from .image_io import IMAGE_SUFFIXES, degenerate_page, find_images, read_page_image
from .ocr_json import is_valid_ocr_json, read_ocr_json, write_ocr_json
from .ocr_runner import PageJob, run_ocr, run_ocr_jobs
from .page_inputs import PageInput, collect_pages

__all__ = [
    "ENGINES",
    "IMAGE_SUFFIXES",
    "EngineUnavailable",
    "PageInput",
    "PageJob",
    "build_engine",
    "collect_pages",
    "degenerate_page",
    "find_images",
    "is_valid_ocr_json",
    "read_ocr_json",
    "read_page_image",
    "register_engine",
    "run_ocr",
    "run_ocr_jobs",
    "write_ocr_json",
]
