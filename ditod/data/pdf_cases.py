"""Born-digital PDFs with what real PDFs bring to a text-layer reader, each with its truth
(``datasets/pdf_cases.py OUT_DIR`` is its command line; :func:`write_cases` the function).

One PDF per case, written with PDFium (pypdfium2): ``rotated_90`` and ``rotated_270`` (pages
with ``/Rotate`` whose text displays upright: a landscape spreadsheet), ``hyphenated``
(justified text, words split across lines with "-"), ``tables`` (unruled cells ~1.3 glyph
heights apart, ruled cells), ``mirrored`` (a negative x scale in the text matrix), ``margin``
(text turned on the page: a note up the margin, a header down a column) and ``chinese`` (CJK
and mixed lines; only with a CJK TrueType font). Each line is placed in the frame of the
*displayed* page, so the truth needs no PDF code: ``OUT_DIR/truth.json`` maps each case to its
PDF and its segments, ``{"text", "box": [x0, y0, x1, y1]}`` in points of the displayed page
(the font's ascent to descent across the line, its advance along it).
"""

import ctypes
import json
import logging
from pathlib import Path

from PIL import ImageFont

from ditod.fonts import cjk_fonts

logger = logging.getLogger(__name__)

LATIN_FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
# display direction → (display vector of the text's advance, of the glyphs' up)
ORIENTATIONS = {
    "right": ((1, 0), (0, -1)),
    "left": ((-1, 0), (0, -1)),  # mirrored: advances left, glyphs upright
    "down": ((0, 1), (1, 0)),
    "up": ((0, -1), (-1, 0)),
}


class CasePage:
    """One page of ``size`` (display width, height in points) with ``/Rotate rotation``; lines
    are placed in display coordinates and mapped to PDF user space here."""

    def __init__(self, document, fonts: dict, size, rotation: int = 0):
        self.document, self.fonts, self.rotation = document, fonts, rotation
        self.width, self.height = size
        user = size if rotation in (0, 180) else size[::-1]
        self.page = document.new_page(*user)
        self.user_width, self.user_height = user
        self.truth = []

    def to_user(self, x: float, y: float) -> tuple[float, float]:
        """A point of the displayed page (y down) in PDF user space."""
        w, h = self.user_width, self.user_height
        return {
            0: (x, h - y),
            90: (y, x),
            180: (w - x, y),
            270: (w - y, h - x),
        }[self.rotation]

    def vector(self, dx: float, dy: float) -> tuple[float, float]:
        (x0, y0), (x1, y1) = self.to_user(0, 0), self.to_user(dx, dy)
        return x1 - x0, y1 - y0

    def text(self, x, y, text: str, size: float, direction: str = "right", font: str = "latin"):
        """Draw ``text`` with its baseline starting at display point (x, y)."""
        import pypdfium2.raw as pdfium_c

        advance, up = ORIENTATIONS[direction]
        a, b = self.vector(*advance)
        c, d = self.vector(*up)
        e, f = self.to_user(x, y)
        handle, path = self.fonts[font]
        obj = pdfium_c.FPDFPageObj_CreateTextObj(self.document, handle, size)
        encoded = ctypes.create_string_buffer((text + "\0").encode("utf-16-le"))
        pdfium_c.FPDFText_SetText(obj, ctypes.cast(encoded, pdfium_c.FPDF_WIDESTRING))
        pdfium_c.FPDFPageObj_Transform(obj, a, b, c, d, e, f)
        pdfium_c.FPDFPage_InsertObject(self.page, obj)
        length = ImageFont.truetype(path, 1000).getlength(text) * size / 1000
        ascent, descent = (v * size / 1000 for v in ImageFont.truetype(path, 1000).getmetrics())
        (ax, ay), (ux, uy) = advance, up
        corners = [
            (x + ax * t + ux * s, y + ay * t + uy * s)
            for t in (0, length)
            for s in (-descent, ascent)
        ]
        xs, ys = [p[0] for p in corners], [p[1] for p in corners]
        return min(xs), min(ys), max(xs), max(ys)

    def segment(self, *args, **kwargs):
        """:meth:`text`, recorded as one expected segment."""
        box = self.text(*args, **kwargs)
        self.truth.append({"text": args[2], "box": [round(v, 2) for v in box]})
        return box

    def line_of_words(self, x, y, words, size, gaps):
        """Words with the given gaps (points) between them: one expected segment."""
        boxes, cursor = [], x
        for word, gap in zip(words, [*gaps, 0]):
            boxes.append(self.text(cursor, y, word, size))
            cursor = boxes[-1][2] + gap
        box = [min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes),
               max(b[3] for b in boxes)]  # fmt: skip
        self.truth.append({"text": " ".join(words), "box": [round(v, 2) for v in box]})

    def rule(self, x0, y0, x1, y1):
        """A ruling line between two display points."""
        import pypdfium2.raw as pdfium_c

        path = pdfium_c.FPDFPageObj_CreateNewPath(*self.to_user(x0, y0))
        pdfium_c.FPDFPath_LineTo(path, *self.to_user(x1, y1))
        pdfium_c.FPDFPath_SetDrawMode(path, pdfium_c.FPDF_FILLMODE_NONE, 1)
        pdfium_c.FPDFPage_InsertObject(self.page, path)

    def finish(self):
        if self.rotation:
            self.page.set_rotation(self.rotation)
        self.page.gen_content()


def _load_font(document, path: str):
    """The font embedded in ``document`` (PDFium copies the data), or None if it cannot."""
    import pypdfium2.raw as pdfium_c

    data = Path(path).read_bytes()
    buffer = (ctypes.c_uint8 * len(data)).from_buffer_copy(data)
    return pdfium_c.FPDFText_LoadFont(document, buffer, len(data), pdfium_c.FPDF_FONT_TRUETYPE, 1)


SPREADSHEET = [
    ["DOCUMENT NO. 4711", "QUARTERLY SUMMARY", "Fiscal 2019"],
    ["Region", "Revenue", "Cost", "Margin"],
    ["North America", "12,480.50", "9,101.20", "27.1%"],
    ["Europe", "8,315.00", "6,870.75", "17.4%"],
    ["Asia Pacific", "10,002.10", "7,455.40", "25.5%"],
]
PARAGRAPH = [
    (
        [
            "The",
            "committee",
            "reviewed",
            "the",
            "program",
            "of",
            "study",
            "and",
            "its",
            "interdisci-",
        ]
    ),
    (["plinary", "courses", "in", "detail", "and", "found", "that", "the", "results", "were"]),
    (["consistent", "with", "the", "well-", "known", "findings", "of", "earlier", "work", "on"]),
    (["the", "subject", "across", "several", "independent", "cohorts."]),
]


def _spreadsheet(page: CasePage, x: float, y: float) -> None:
    for row in SPREADSHEET:
        cursor = x
        for cell in row:
            box = page.segment(cursor, y, cell, 11)
            cursor = max(box[2] + 40, cursor + 150)
        y += 24


def write_cases(out_dir) -> dict:
    """Write every case's PDF into ``out_dir`` and ``truth.json``; returns the truth."""
    import pypdfium2

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    truth = {}

    def new(name, size, rotation=0, cjk=False):
        document = pypdfium2.PdfDocument.new()
        fonts = {"latin": (_load_font(document, LATIN_FONT), LATIN_FONT)}
        if cjk:
            for path in cjk_fonts():
                handle = _load_font(document, path)
                if handle:
                    fonts["cjk"] = (handle, path)
                    break
            if "cjk" not in fonts:
                return None, None
        return document, CasePage(document, fonts, size, rotation)

    def save(name, document, page):
        page.finish()
        path = out_dir / f"{name}.pdf"
        document.save(str(path))
        document.close()
        truth[name] = {"pdf": path.name, "size": [page.width, page.height],
                       "segments": page.truth}  # fmt: skip

    for rotation in (90, 270):
        document, page = new(f"rotated_{rotation}", (792, 612), rotation)
        _spreadsheet(page, 60, 80)
        page.segment(60, 400, "Totals are in thousands of US dollars.", 10)
        save(f"rotated_{rotation}", document, page)

    document, page = new("hyphenated", (612, 792))
    size, left, y, space = 11, 72, 100, 3.5  # a normal space is 0.32 em: 3.5 pt at 11 pt

    def natural(words):
        font = ImageFont.truetype(LATIN_FONT, 1000)
        return sum(font.getlength(word) * size / 1000 for word in words)

    width = max(natural(words) + space * (len(words) - 1) for words in PARAGRAPH)
    for k, words in enumerate(PARAGRAPH):  # justified: every line but the last fills the width
        last = k == len(PARAGRAPH) - 1
        gap = space if last else (width - natural(words)) / (len(words) - 1)
        page.line_of_words(left, y, words, size, [gap] * (len(words) - 1))
        y += 15
    save("hyphenated", document, page)

    document, page = new("tables", (612, 792))
    y = 100
    for row in (["Item", "2018", "2019", "2020"], ["Revenue", "1,204", "1,310", "1,475"],
                ["Net income", "212", "245", "260"]):  # fmt: skip
        cursor = 72
        for cell in row:
            box = page.segment(cursor, y, cell, 10)
            cursor = box[2] + 1.27 * (box[3] - box[1])  # the unruled table's narrow gaps
        y += 18
    y += 30
    columns = [72, 190, 300, 410, 520]
    for r, row in enumerate((["Model", "Params", "AP", "Speed"], ["Base", "133 M", "95.1", "1.2 s"],
                              ["Large", "368 M", "95.9", "3.4 s"])):  # fmt: skip
        for c, cell in enumerate(row):
            page.segment(columns[c] + 4, y + r * 20, cell, 10)
        page.rule(columns[0], y + r * 20 - 14, columns[-1], y + r * 20 - 14)
    for x in columns:
        page.rule(x, y - 14, x, y + 3 * 20 - 14)
    save("tables", document, page)

    document, page = new("mirrored", (612, 792))
    page.segment(400, 100, "The movie was fine", 12, "left")
    page.segment(72, 140, "An upright line below it", 12)
    save("mirrored", document, page)

    document, page = new("margin", (612, 792))
    for k in range(6):
        page.segment(90, 100 + 16 * k, f"Body text line {k + 1} of the page", 11)
    page.segment(40, 500, "Received 12 March 2021", 9, "up")
    page.segment(560, 120, "Column header", 9, "down")
    save("margin", document, page)

    document, page = new("chinese", (612, 792), cjk=True)
    if document is None:
        logger.warning("no CJK TrueType font found: the chinese case is left out")
    else:
        page.segment(72, 100, "表 2：各地区季度收入", 12, font="cjk")
        page.segment(72, 130, "图 3：模型结构示意图", 12, font="cjk")
        page.segment(72, 160, "Table 2 revenue 收入 2019", 12, font="cjk")
        save("chinese", document, page)

    (out_dir / "truth.json").write_text(json.dumps(truth, ensure_ascii=False, indent=1))
    return truth
