"""OCR of one page: its image read at a size the engine needs, the engine run on it, its lines
as the page-text JSON (in the pixels of the full page); and the same on a Ray worker."""

import io

from .engines import build_engine
from .image_io import page_size, read_page_image
from .ocr_json import engine_record, page_text

__all__ = ["OCR_MAX_SIDE", "OCRActor", "ocr_page"]

# Longest side a page is OCR'd at (A4 at ~340 dpi): larger scans cost memory, not accuracy.
OCR_MAX_SIDE = 4000


def ocr_page(engine, image_path, max_side: int = OCR_MAX_SIDE) -> dict:
    """OCR one page image into its JSON dict; W and H are the upright (EXIF-applied) size.
    A page whose longer side is over ``max_side`` is OCR'd at that size (boxes in the pixels
    of the full page)."""
    width, height = page_size(image_path)
    image = read_page_image(
        image_path, max_side=max_side if max(width, height) > max_side else None
    )
    scale = width / image.shape[1]
    lines = engine(image)
    if scale != 1:
        lines = [_scaled_line(line, scale) for line in lines]
    return page_text(lines, width, height, engine_record(engine))


def _scaled_line(line, scale: float):
    box, text, score, poly = line
    return (
        [round(v * scale, 1) for v in box],
        text,
        score,
        [[round(x * scale, 1), round(y * scale, 1)] for x, y in poly],
    )


class OCRActor:
    """One engine on a Ray worker: page image bytes in, the page's OCR JSON dict out."""

    def __init__(self, engine, options):
        self.engine = build_engine(engine, **options)

    def ocr(self, data: bytes) -> dict:
        return ocr_page(self.engine, io.BytesIO(data))
