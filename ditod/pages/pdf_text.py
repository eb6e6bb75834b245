"""Text of born-digital PDF pages from their text layer (PDFium, through pypdfium2): lines with
boxes in the pixels of the rendered page, in the OCR JSON format, so such pages need no OCR.

A page whose text layer is missing (a scan) or unusable (most glyphs without a Unicode mapping,
e.g. fonts subset without a ``ToUnicode`` map, which extract as private-use or replacement
characters) yields no text here; the caller OCRs its rendered image instead.
"""

import ctypes
import importlib.metadata
import logging
import math
import re
from dataclasses import dataclass
from pathlib import Path

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
# Word and line breaks the layer does not spell out, in units of the characters' height: a
# horizontal gap wider than WORD_GAP starts a word, one wider than LINE_GAP a new line segment
# (columns, table cells), as an OCR detector would split them.
WORD_GAP = 0.25
LINE_GAP = 1.5
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


def _characters(textpage):
    """``(code, (left, bottom, right, top))`` of every character PDFium found (its loose box:
    the font's ascent to descent, so a line's characters share one height)."""
    import pypdfium2.raw as pdfium_c

    rect = pdfium_c.FS_RECTF()
    count = pdfium_c.FPDFText_CountChars(textpage)
    for index in range(count):
        code = pdfium_c.FPDFText_GetUnicode(textpage, index)
        if code in _SPACES or code in _BREAKS:
            yield code, None
            continue
        if not pdfium_c.FPDFText_GetLooseCharBox(textpage, index, ctypes.byref(rect)):
            yield code, None
            continue
        if pdfium_c.FPDFText_HasUnicodeMapError(textpage, index) == 1:
            code = 0xFFFD
        yield code, (rect.left, rect.bottom, rect.right, rect.top)


def _lines(characters):
    """Group characters into words and words into line segments, in the layer's order.

    Returns ``[(words, (left, bottom, right, top)), ...]`` in PDF user space; ``words`` is a
    list of strings."""
    lines, words, word, box, last = [], [], [], None, None

    def end_word():
        nonlocal word
        if word:
            words.append("".join(word))
            word = []

    def end_line():
        nonlocal words, box
        end_word()
        if words:
            lines.append((words, box))
        words, box = [], None

    for code, char_box in characters:
        if char_box is None:
            if code in _BREAKS:
                end_line()
                last = None
            else:
                end_word()
            continue
        left, bottom, right, top = char_box
        size = max(top - bottom, 1e-3)
        if last is not None:
            _, last_bottom, last_right, last_top = last
            middle, last_middle = (bottom + top) / 2, (last_bottom + last_top) / 2
            gap = left - last_right
            if abs(middle - last_middle) > 0.5 * size or gap > LINE_GAP * size or gap < -size:
                end_line()
            elif gap > WORD_GAP * size:
                end_word()
        word.append(chr(code))
        if box is None:
            box = [left, bottom, right, top]
        else:
            box = [min(box[0], left), min(box[1], bottom), max(box[2], right), max(box[3], top)]
        last = char_box
    end_line()
    return lines


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
        page = self.document[index]
        try:
            textpage = page.get_textpage()
            try:
                characters = list(_characters(textpage))
            finally:
                textpage.close()
            to_pixels = _device_transform(page, width, height)
        finally:
            page.close()
        glyphs = [code for code, box in characters if box is not None]
        if not glyphs:
            return TextLayerResult(None, "no text layer")
        unmapped = sum(_unmapped(code) for code in glyphs)
        if unmapped > MAX_UNMAPPED_FRACTION * len(glyphs):
            return TextLayerResult(
                None, f"text layer unusable: {unmapped} of {len(glyphs)} glyphs have no Unicode"
            )
        boxes, texts = [], []
        for words, (left, bottom, right, top) in _lines(characters):
            text = " ".join(words)
            if not text.strip():
                continue
            (x0, y0), (x1, y1) = to_pixels(left, top), to_pixels(right, bottom)
            x0, x1 = sorted((min(max(x0, 0), width), min(max(x1, 0), width)))
            y0, y1 = sorted((min(max(y0, 0), height), min(max(y1, 0), height)))
            if x1 - x0 <= 0 or y1 - y0 <= 0:
                continue  # text outside the crop box is not on the rendered page
            boxes.append([round(x0, 1), round(y0, 1), round(x1 - x0, 1), round(y1 - y0, 1)])
            texts.append(text)
        return TextLayerResult(
            {
                "bbox": boxes,
                "words": texts,
                "W": int(width),
                "H": int(height),
                "engine": text_layer_engine(),
            }
        )
