"""Synthetic document pages with known layout and text: COCO json + one OCR JSON per page
(``datasets/synthetic_pages.py`` is its command line; :func:`generate` the function).

:func:`generate` writes ``<out>/images/*.png``, ``<out>/OCR/*.json`` (``{"bbox": [[x, y, w, h]],
"words", "W", "H"}``, the exact rendered lines) and ``<out>/{train,val}.json`` (COCO); with
``--pdf`` also ``<out>/pdf/*.pdf``, each page as a born-digital PDF (its text as real text in
the embedded font, one point per pixel of the PNG, the rest as an image). With
``layout="labelme"`` it writes CDLA's layout instead: JPEG pages with a labelme JSON beside each.

Figure and table captions look alike ("Figure 3: …" / "Table 2: …", same font), so only their
text and their place tell them apart: with ``--captions below`` (the default) most stand under
their figure or table, the rest alone in the text flow; with ``--captions apart`` all stand alone
and figures and tables have none, so nothing but the text says which kind a caption is.
``style="document"`` draws pages that look like papers instead (:mod:`ditod.data.document_pages`).
English uses DejaVu (matplotlib ships it); Chinese needs a CJK font (:mod:`ditod.fonts`; or
``--font``).
"""

import hashlib
import multiprocessing
import os
import random
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from ditod.data.class_sets import CDLA_CLASSES, PUBLAYNET_CLASSES
from ditod.data.labelme import labelme_page
from ditod.file_io import atomic_path, write_json_atomic
from ditod.fonts import find_cjk_font, matplotlib_font

ENGLISH_VOCABULARY = (
    "layout detection document model page text region feature network training data results "
    "method table figure accuracy baseline analysis section approach learning transformer image "
    "token segment boxes evaluation"
)
CHINESE_VOCABULARY = (
    "文档版面分析模型页面文本区域特征网络训练数据结果方法表格图像准确率基线实验识别检测"
)
WORDS = {"en": ENGLISH_VOCABULARY.split(" "), "zh": list(CHINESE_VOCABULARY)}
PAGE_SIZE = (612, 792)
MARGIN = 48
LINE_HEIGHT = int(11 * 1.5)  # a text line at 11 pt
TABLE_ROW_HEIGHT = 16
CAPTION_HEIGHT = 24  # a 10 pt caption line and the space after it
CAPTION_PLACEMENTS = ("below", "apart")


# The modules whose code decides what a synthetic page looks like.
RENDERING_MODULES = (
    "synthetic.py",
    "document_pages.py",
    "document_figures.py",
    "document_text.py",
    "page_degrade.py",
)


def generator_fingerprint() -> str:
    """A digest of the page generator's code (:data:`RENDERING_MODULES`): pages cached under one
    fingerprint are what this version renders for the same settings."""
    digest = hashlib.sha1()
    for name in RENDERING_MODULES:
        digest.update((Path(__file__).parent / name).read_bytes())
    return digest.hexdigest()[:12]


def find_font(language: str, font: str | None = None) -> str:
    """Path of a TrueType font for ``language``; raises naming what to install."""
    if font:
        if not Path(font).is_file():
            raise FileNotFoundError(f"--font {font} does not exist")
        return font
    if language == "en":
        return matplotlib_font("DejaVuSans.ttf")
    return find_cjk_font()


class PageWriter:
    """Draws one page, recording layout boxes and OCR lines."""

    def __init__(self, rng, font_path, language, classes, captions="below"):
        if captions not in CAPTION_PLACEMENTS:
            raise ValueError(f"captions '{captions}' is not one of {CAPTION_PLACEMENTS}")
        self.rng, self.font_path, self.language, self.classes = rng, font_path, language, classes
        self.captions = captions
        self.image = Image.new("RGB", PAGE_SIZE, "white")
        self.draw = ImageDraw.Draw(self.image)
        self.boxes, self.ocr_boxes, self.ocr_words = [], [], []
        self.texts = []  # (x, baseline y, text, font size, font path, RGB) of every line drawn
        self.picture_lines: set[int] = set()  # OCR lines read from pictures: none here

    def font(self, size):
        return ImageFont.truetype(self.font_path, size)

    def sentence(self, n):
        words = [self.rng.choice(WORDS[self.language]) for _ in range(n)]
        return ("" if self.language == "zh" else " ").join(words)

    def line(self, x, y, text, size, width=None):
        """Draw one text line (cut to ``width``); record it as an OCR segment; return its box."""
        font = self.font(size)
        while width and self.draw.textlength(text, font=font) > width and len(text) > 1:
            text = text[:-1].rstrip()
        self.draw.text((x, y), text, fill="black", font=font)
        self.texts.append((x, y + font.getmetrics()[0], text, size, self.font_path, (0, 0, 0)))
        x0, y0, x1, y1 = self.draw.textbbox((x, y), text, font=font)
        self.ocr_boxes.append([x0, y0, x1 - x0, y1 - y0])
        self.ocr_words.append(text)
        return x0, y0, x1, y1

    def add(self, name, x0, y0, x1, y1):
        mapped = {"Text": "text", "Title": "title", "Table": "table", "Figure": "figure"}
        if self.classes is PUBLAYNET_CLASSES:
            name = mapped.get(name, "text" if name in ("Reference", "Equation") else None)
            if name is None:
                return
        self.boxes.append((name, [x0, y0, x1 - x0, y1 - y0]))

    def paragraph(self, x, y, width, lines, size=11, name="Text", prefix=""):
        top, bottom = y, y
        for k in range(lines):
            text = (prefix if k == 0 else "") + self.sentence(14 if self.language == "en" else 40)
            _, _, _, bottom = self.line(x, y, text, size, width)
            y += int(size * 1.5)
        self.add(name, x, top, x + width, bottom)
        return y + 8

    def figure(self, x, y, width, height):
        self.draw.rectangle([x, y, x + width, y + height], outline="black", width=2)
        for _ in range(6):
            px, py = self.rng.randint(x + 5, x + width - 5), self.rng.randint(y + 5, y + height - 5)
            self.draw.ellipse([px - 4, py - 4, px + 4, py + 4], fill="gray")
        self.draw.line([x + 5, y + height - 10, x + width - 5, y + 10], fill="black", width=2)
        self.add("Figure", x, y, x + width + 1, y + height + 1)
        return y + height + 6

    def table(self, x, y, width, rows, cols):
        row_h, col_w = TABLE_ROW_HEIGHT, width // cols
        for r in range(rows):
            for c in range(cols):
                self.line(x + c * col_w + 3, y + r * row_h + 2, self.sentence(1), 9, col_w - 6)
        for r in range(rows + 1):
            self.draw.line([x, y + r * row_h, x + cols * col_w, y + r * row_h], fill="black")
        self.add("Table", x, y, x + cols * col_w + 1, y + rows * row_h + 1)
        return y + rows * row_h + 6

    def caption(self, x, y, width, kind, number):
        label = {
            "en": f"{kind} {number}: ",
            "zh": f"{'图' if kind == 'Figure' else '表'}{number}：",
        }
        x0, y0, x1, y1 = self.line(x, y, label[self.language] + self.sentence(6), 10, width)
        self.add(f"{kind} caption", x0, y0, x1, y1)
        return y1 + 10

    def column(self, x, width, y, bottom, counters):
        """Blocks from ``y`` down; the first block that would reach ``bottom`` (where the
        references start) ends the column instead."""
        apart = self.captions == "apart"
        caption_height = 0 if apart else CAPTION_HEIGHT
        while y < bottom - 60:
            # apart: the captions figures and tables would carry stand alone instead
            kind = self.rng.choices(
                ["Text", "Figure", "Table", "Caption", "Equation"], [5, 1, 1, 3 if apart else 1, 1]
            )[0]
            if kind == "Text":
                lines = self.rng.randint(2, 5)
                if y + lines * LINE_HEIGHT > bottom:
                    break
                y = self.paragraph(x, y, width, lines)
            elif kind in ("Figure", "Table"):
                block_width = width - self.rng.randint(0, 40)
                if kind == "Figure":
                    size = (self.rng.randint(70, 120),)
                    height = size[0] + 6
                else:
                    size = (self.rng.randint(3, 5), self.rng.randint(2, 4))
                    height = size[0] * TABLE_ROW_HEIGHT + 6
                if y + height + caption_height > bottom:
                    break
                counters[kind] += 1
                draw = self.figure if kind == "Figure" else self.table
                y = draw(x, y, block_width, *size)
                if not apart:
                    y = self.caption(x, y, width, kind, counters[kind])
            elif y + CAPTION_HEIGHT > bottom:
                break
            elif kind == "Caption":  # a caption alone in the text flow
                which = self.rng.choice(["Figure", "Table"])
                y = self.caption(x, y, width, which, self.rng.randint(1, 9))
            else:
                formula = "E = m c² + Σ x_i  (" + str(self.rng.randint(1, 20)) + ")"
                x0, y0, x1, y1 = self.line(x + width // 4, y, formula, 12)
                self.add("Equation", x0, y0, x1, y1)
                y = y1 + 10
        return y

    def render(self, columns: int):
        width = PAGE_SIZE[0] - 2 * MARGIN
        x0, y0, x1, y1 = self.line(MARGIN, 16, self.sentence(5), 9, width)
        self.add("Header", x0, y0, x1, y1)
        y = self.paragraph(MARGIN, 44, width, 1, size=20, name="Title") + 6
        bottom = PAGE_SIZE[1] - 100
        counters = {"Figure": 0, "Table": 0}
        if columns == 1:
            self.column(MARGIN, width, y, bottom, counters)
        else:
            gutter = 24
            col = (width - gutter) // 2
            self.column(MARGIN, col, y, bottom, counters)
            self.column(MARGIN + col + gutter, col, y, bottom, counters)
        ref_y = bottom
        ref_y = self.paragraph(MARGIN, ref_y, width, 2, size=9, name="Reference", prefix="[1] ")
        x0, y0, x1, y1 = self.line(
            PAGE_SIZE[0] // 2 - 10, PAGE_SIZE[1] - 30, str(self.rng.randint(1, 300)), 9
        )
        self.add("Footer", x0, y0, x1, y1)


def write_pdf(page, path: Path) -> None:
    """``page`` (a :class:`PageWriter` or a :class:`~.document_pages.DocumentPage`) as a
    one-page PDF of its size in points: the image with its drawn text erased as the background
    (the text read from its pictures stays in them), and each text run it drew as real text in
    its font at its place."""
    import ctypes

    import pypdfium2
    import pypdfium2.raw as pdfium_c

    background = page.image.copy()
    eraser = ImageDraw.Draw(background)
    for index, (x, y, w, h) in enumerate(page.ocr_boxes):
        if index in page.picture_lines:
            continue
        eraser.rectangle([x, y, x + w - 1, y + h - 1], fill="white")
    width, height = page.image.size
    document = pypdfium2.PdfDocument.new()
    pdf_page = document.new_page(width, height)
    image = pypdfium2.PdfImage.new(document)
    image.set_bitmap(pypdfium2.PdfBitmap.from_pil(background))
    image.set_matrix(pypdfium2.PdfMatrix().scale(width, height))
    pdf_page.insert_obj(image)
    fonts = {}
    for x, baseline, text, size, font_path, (red, green, blue) in page.texts:
        if font_path not in fonts:
            data = Path(font_path).read_bytes()
            buffer = (ctypes.c_uint8 * len(data)).from_buffer_copy(data)
            kind = pdfium_c.FPDF_FONT_TRUETYPE
            fonts[font_path] = pdfium_c.FPDFText_LoadFont(document, buffer, len(data), kind, 1)
            if not fonts[font_path]:
                raise ValueError(f"{font_path}: PDFium cannot embed this font")
        font = fonts[font_path]
        text_object = pdfium_c.FPDFPageObj_CreateTextObj(document, font, size)
        encoded = ctypes.create_string_buffer((text + "\0").encode("utf-16-le"))
        pdfium_c.FPDFText_SetText(text_object, ctypes.cast(encoded, pdfium_c.FPDF_WIDESTRING))
        pdfium_c.FPDFPageObj_Transform(text_object, 1, 0, 0, 1, x, height - baseline)
        pdfium_c.FPDFPageObj_SetFillColor(text_object, red, green, blue, 255)
        pdfium_c.FPDFPage_InsertObject(pdf_page, text_object)
    pdf_page.gen_content()
    try:
        with atomic_path(path) as tmp:
            document.save(str(tmp))
    finally:
        document.close()


STYLES = ("simple", "document")
LAYOUTS = ("coco", "labelme")


@dataclass(frozen=True)
class PageFiles:
    """Where one page's files go: its image (PNG or JPEG by suffix), its text as page-text JSON,
    and its PDF (None: none)."""

    image: Path
    text: Path
    pdf: Path | None = None


def _save_page(page, files: PageFiles) -> tuple:
    """Write ``page``'s image, text JSON and PDF; return ``((width, height), boxes)``."""
    with atomic_path(files.image) as tmp:
        page.image.save(tmp, format="JPEG" if files.image.suffix == ".jpg" else "PNG", quality=95)
    if files.pdf:
        write_pdf(page, files.pdf)
    width, height = page.image.size
    text = {"bbox": page.ocr_boxes, "words": page.ocr_words, "W": width, "H": height}
    write_json_atomic(files.text, text)
    return (width, height), page.boxes


def _document_page(job: tuple) -> tuple:
    """Render and write one document-style page (in a worker process)."""
    from .document_pages import DocumentPage

    files, seed, language, classes, columns, font_for_all = job
    page = DocumentPage(
        random.Random(seed),
        language,
        columns,
        font=font_for_all,
        publaynet=classes == "publaynet",
        scanned=files.pdf is None,
    )
    page.render()
    return _save_page(page, files)


def _rendered_pages(files, classes, language, columns, seed, font, captions, style):
    """``((width, height), boxes)`` of each page of ``files`` (a list of :class:`PageFiles`),
    as it is written."""
    names = CDLA_CLASSES if classes == "cdla" else PUBLAYNET_CLASSES
    font_path = find_font(language, font)
    if style == "simple":
        rng = random.Random(seed)
        for page_files in files:
            page = PageWriter(rng, font_path, language, names, captions)
            page.render(rng.choice(list(columns)))
            yield _save_page(page, page_files)
        return
    font_for_all = font_path if language == "zh" or font else None
    jobs = [
        (page_files, f"{seed}:{index}", language, classes, columns, font_for_all)
        for index, page_files in enumerate(files)
    ]
    workers = min(len(jobs), os.cpu_count() or 1)
    if workers <= 1:
        yield from map(_document_page, jobs)
        return
    context = multiprocessing.get_context("spawn")  # no state of the caller's (torch) inherited
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        yield from pool.map(_document_page, jobs, chunksize=4)


def _page_files(out: Path, names: list[str], splits: list[str], layout: str, pdf: bool) -> list:
    """:class:`PageFiles` of each page in ``layout``; makes their folders."""
    files = []
    for name, split in zip(names, splits, strict=True):
        pdf_path = out / "pdf" / f"{name}.pdf" if pdf else None
        if layout == "coco":
            image, text = out / "images" / f"{name}.png", out / "OCR" / f"{name}.json"
        else:
            image, text = out / split / f"{name}.jpg", out / "text" / f"{name}.json"
        files.append(PageFiles(image, text, pdf_path))
    for folder in {path.parent for f in files for path in (f.image, f.text, f.pdf) if path}:
        folder.mkdir(parents=True, exist_ok=True)
    return files


def generate(
    out,
    pages=40,
    classes="cdla",
    language="en",
    columns=(1, 2),
    seed=0,
    split_val=0.2,
    font=None,
    pdf=False,
    captions="below",
    style="simple",
    layout="coco",
) -> dict:
    """Render ``pages`` pages into ``out`` (with ``pdf``, each also as ``pdf/<name>.pdf``;
    ``captions``: "below" their figure or table, or "apart" from them, see the module's doc;
    ``style``: "simple" pages, or "document" pages that look like papers, rendered in parallel:
    :mod:`ditod.data.document_pages`).

    ``layout="coco"``: ``images/*.png``, their text ``OCR/*.json`` and
    ``{train,val}.json``; returns ``{"train": json_path, "val": json_path}``.
    ``layout="labelme"``: CDLA's layout, ``{train,val}/*.jpg`` each with its labelme JSON beside
    it (:mod:`ditod.data.labelme`; ``datasets/cdla_to_coco.py`` reads it), and the pages' text
    in ``text/*.json`` (not ``OCR/``, where a user's OCR of the pages goes); returns
    ``{"train": folder, "val": folder}``."""
    if style not in STYLES:
        raise ValueError(f"style '{style}' is not one of {STYLES}")
    if layout not in LAYOUTS:
        raise ValueError(f"layout '{layout}' is not one of {LAYOUTS}")
    out = Path(out)
    num_val = round(pages * split_val)
    page_names = [f"{language}_{index:05d}" for index in range(pages)]
    page_splits = ["val" if index >= pages - num_val else "train" for index in range(pages)]
    files = _page_files(out, page_names, page_splits, layout, pdf)
    rendered = _rendered_pages(files, classes, language, columns, seed, font, captions, style)
    if layout == "labelme":
        rng = random.Random(f"{seed}:labelme")
        for page_files, (size, boxes) in zip(files, rendered, strict=True):
            page = labelme_page(page_files.image.name, size, boxes, rng)
            write_json_atomic(page_files.image.with_suffix(".json"), page)
        return {split: out / split for split in ("train", "val")}
    names = CDLA_CLASSES if classes == "cdla" else PUBLAYNET_CLASSES
    categories = [{"id": i, "name": n} for i, n in enumerate(names, start=1)]
    ids = {n: i for i, n in enumerate(names, start=1)}
    splits = {"train": {"images": [], "annotations": []}, "val": {"images": [], "annotations": []}}
    for index, (page_files, split_name, ((width, height), boxes)) in enumerate(
        zip(files, page_splits, rendered, strict=True)
    ):
        split = splits[split_name]
        image_id = index + 1
        split["images"].append(
            {"id": image_id, "file_name": page_files.image.name, "width": width, "height": height}
        )
        for label, box in boxes:
            annotation = {
                "id": len(split["annotations"]) + 1,
                "image_id": image_id,
                "category_id": ids[label],
                "bbox": box,
                "area": box[2] * box[3],
                "iscrowd": 0,
            }
            split["annotations"].append(annotation)
    paths = {}
    for split, data in splits.items():
        paths[split] = out / f"{split}.json"
        write_json_atomic(paths[split], {**data, "categories": categories})
    return paths
