"""Text of born-digital PDF pages from their text layer (PDFium, through pypdfium2): lines with
boxes in the pixels of the rendered page, in the OCR JSON format, so such pages need no OCR.

Each glyph is placed on the displayed page (crop box, ``/Rotate`` and its text matrix applied)
and the glyphs are grouped into segments there (:mod:`.glyph_lines`); PDFium's line-end hyphen
(U+0002) is written as "-". A page whose text layer is missing (a scan) or unusable (glyphs
without a Unicode mapping, e.g. fonts subset without a ``ToUnicode`` map; glyphs set at an
angle; positions that form no lines) yields no text here, with the reason; the caller OCRs its
rendered image instead.
"""

import ctypes
import importlib.metadata
import logging
import math
import re
from dataclasses import dataclass
from pathlib import Path

from .glyph_lines import NEWLINE, SPACE, Glyph, direction_of, segments

__all__ = [
    "TEXT_LAYER_ENGINE",
    "PdfTextLayer",
    "TextLayerResult",
    "pdf_problem",
    "text_layer_engine",
]

logger = logging.getLogger(__name__)

TEXT_LAYER_ENGINE = "pdf-text-layer"
# A text layer with more than this fraction of its glyphs unmapped is garbage: OCR the page.
MAX_UNMAPPED_FRACTION = 0.1
# A page whose segments are mostly single glyphs (over this share of at least this many
# segments) has glyph positions that do not form lines: OCR it.
MAX_SINGLE_GLYPH_FRACTION = 0.5
MIN_SEGMENTS_TO_JUDGE = 10
# PDFium's code for a hyphen that ends a line ("disci-" / "pline"): written as "-".
_LINE_END_HYPHEN = 0x02
_SPACES = {0x20, 0x09, 0xA0, 0x3000}
_BREAKS = {0x0A, 0x0D, 0x0C, 0x2028, 0x2029}


def _unmapped(code: int) -> bool:
    """Characters PDFium reports for glyphs it could not map to Unicode."""
    return code in (0, 0xFFFD, 0xFFFE) or 0xE000 <= code <= 0xF8FF or code < 0x20


def text_layer_engine() -> dict:
    """The ``engine`` record of OCR JSON taken from a PDF's text layer."""
    try:
        version = importlib.metadata.version("pypdfium2")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    return {"name": TEXT_LAYER_ENGINE, "version": f"pypdfium2 {version}"}


def pdf_problem(pdf: Path) -> str:
    """Why PDFium refused ``pdf``, read from the file itself: PDFium's own "last error" is
    process-wide and not reset on success, so after one failure it names the previous file's
    problem (and a PDF with no pages reads "Success")."""
    data = pdf.read_bytes()
    if b"%PDF-" not in data[:1024]:
        return "not a PDF (no %PDF header)"
    if b"/Encrypt" in data:
        return "encrypted (password-protected); decrypt it first, e.g. qpdf --decrypt IN OUT"
    counts = [int(n) for n in re.findall(rb"/Count\s+(\d+)", data)]
    if counts and max(counts) == 0 and not re.search(rb"/Type\s*/Page(?![s\w])", data):
        return "the PDF has no pages"
    return "damaged: PDFium could not parse it"


@dataclass
class TextLayerResult:
    """One page's text layer: ``page`` is the OCR JSON dict, or None with ``reason`` saying why
    the page needs OCR (no text layer, garbage text layer)."""

    page: dict | None
    reason: str = ""


def _device_transform(page, width: int, height: int):
    """(x, y) in PDF user space → pixels of the page rendered at ``width`` × ``height``, for
    the page's crop box and ``/Rotate`` (as pypdfium2 renders it)."""
    left, bottom, right, top = page.get_cropbox()
    rotation = page.get_rotation() % 360
    w_pt, h_pt = right - left, top - bottom
    if rotation in (90, 270):
        sx, sy = width / h_pt, height / w_pt
    else:
        sx, sy = width / w_pt, height / h_pt
    if rotation == 90:
        return lambda x, y: ((y - bottom) * sx, (x - left) * sy)
    if rotation == 180:
        return lambda x, y: ((right - x) * sx, (y - bottom) * sy)
    if rotation == 270:
        return lambda x, y: ((top - y) * sx, (right - x) * sy)
    return lambda x, y: ((x - left) * sx, (top - y) * sy)


def _glyphs(textpage, to_pixels, counts: dict):
    """The layer's characters as :class:`Glyph` s on the displayed page (and :data:`SPACE` /
    :data:`NEWLINE` markers), in its order. ``counts`` gets ``glyphs``, ``unmapped`` (no
    Unicode: left out) and ``skewed`` (text at an angle: left out)."""
    import pypdfium2.raw as pdfium_c

    rect, matrix = pdfium_c.FS_RECTF(), pdfium_c.FS_MATRIX()
    origin = to_pixels(0.0, 0.0)
    for index in range(pdfium_c.FPDFText_CountChars(textpage)):
        code = pdfium_c.FPDFText_GetUnicode(textpage, index)
        if code in _SPACES:
            yield SPACE
            continue
        if code in _BREAKS:
            yield NEWLINE
            continue
        if not pdfium_c.FPDFText_GetLooseCharBox(textpage, index, ctypes.byref(rect)):
            continue
        counts["glyphs"] += 1
        if code == _LINE_END_HYPHEN:
            code = ord("-")
        elif pdfium_c.FPDFText_HasUnicodeMapError(textpage, index) == 1 or _unmapped(code):
            counts["unmapped"] += 1
            continue
        if not pdfium_c.FPDFText_GetMatrix(textpage, index, ctypes.byref(matrix)):
            counts["skewed"] += 1
            continue
        advance = to_pixels(matrix.a, matrix.b)
        direction = direction_of(advance[0] - origin[0], advance[1] - origin[1])
        if direction is None:
            counts["skewed"] += 1
            continue
        (x0, y0), (x1, y1) = to_pixels(rect.left, rect.top), to_pixels(rect.right, rect.bottom)
        box = (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))
        yield Glyph(chr(code), box, direction)


class PdfTextLayer:
    """Reads the text layer of one PDF's pages; open once per PDF, close when done (or use as
    a context manager)."""

    def __init__(self, pdf):
        import pypdfium2

        self.path = Path(pdf)
        try:
            self.document = pypdfium2.PdfDocument(str(self.path))
        except pypdfium2.PdfiumError:
            raise ValueError(f"{self.path}: {pdf_problem(self.path)}") from None

    def __len__(self) -> int:
        return len(self.document)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:
        self.document.close()

    def page_size(self, index: int, dpi: float) -> tuple[int, int]:
        """Pixel size (W, H) of page ``index`` rendered at ``dpi`` (rotation applied)."""
        page = self.document[index]
        try:
            scale = dpi / 72  # as pypdfium2's render computes it
            return math.ceil(page.get_width() * scale), math.ceil(page.get_height() * scale)
        finally:
            page.close()

    def read(self, index: int, width: int, height: int) -> TextLayerResult:
        """Page ``index`` (0-based) as an OCR JSON dict for its image of ``width`` × ``height``
        pixels: one entry per line segment (``bbox`` [x, y, w, h], ``words`` its text)."""
        counts = {"glyphs": 0, "unmapped": 0, "skewed": 0}
        page = self.document[index]
        try:
            to_pixels = _device_transform(page, width, height)
            textpage = page.get_textpage()
            try:
                items = list(_glyphs(textpage, to_pixels, counts))
            finally:
                textpage.close()
        finally:
            page.close()
        total = counts["glyphs"]
        if not total:
            return TextLayerResult(None, "no text layer")
        if counts["unmapped"] > MAX_UNMAPPED_FRACTION * total:
            return TextLayerResult(
                None, f"text layer unusable: {counts['unmapped']} of {total} glyphs have no Unicode"
            )
        if counts["skewed"] > MAX_UNMAPPED_FRACTION * total:
            return TextLayerResult(
                None, f"text layer unusable: {counts['skewed']} of {total} glyphs are set at an "
                "angle (not along the page's axes)"
            )  # fmt: skip
        found = segments(items)
        single = sum(segment.glyphs == 1 for segment in found)
        if len(found) >= MIN_SEGMENTS_TO_JUDGE and single > MAX_SINGLE_GLYPH_FRACTION * len(found):
            return TextLayerResult(
                None, f"text layer unusable: {single} of its {len(found)} segments are single "
                "glyphs (glyph positions that do not form lines)"
            )  # fmt: skip
        boxes, texts = [], []
        for segment in found:
            x0, y0, x1, y1 = segment.box
            x0, x1 = min(max(x0, 0), width), min(max(x1, 0), width)
            y0, y1 = min(max(y0, 0), height), min(max(y1, 0), height)
            if x1 - x0 <= 0 or y1 - y0 <= 0:
                continue  # text outside the crop box is not on the rendered page
            boxes.append([round(x0, 1), round(y0, 1), round(x1 - x0, 1), round(y1 - y0, 1)])
            texts.append(segment.text)
        return TextLayerResult(
            {
                "bbox": boxes,
                "words": texts,
                "W": int(width),
                "H": int(height),
                "engine": text_layer_engine(),
            }
        )
