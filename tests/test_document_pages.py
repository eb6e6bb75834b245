"""Synthetic pages in the "document" style (ditod.data.document_pages): every box exact on
born-digital and on scan-degraded pages, every OCR line the drawn text (and the text in its
pictures), reproducible, in CDLA's or PubLayNet's classes, and a PDF whose text layer reads the
drawn lines."""

import json
import random
import re

import numpy as np
import pytest
from PIL import Image, ImageDraw

from ditod.data import document_pages, synthetic
from ditod.data.class_sets import CDLA_CLASSES, PUBLAYNET_CLASSES
from ditod.data.document_pages import DocumentPage
from ditod.data.document_text import CHINESE_LATIN_TERMS, SECTION_NAMES
from ditod.data.page_degrade import rotate_box

DARK = 160  # a pixel darker than this is ink


def covered(shape, boxes, margin: int) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    for x, y, w, h in boxes:
        mask[max(0, y - margin) : y + h + margin, max(0, x - margin) : x + w + margin] = True
    return mask


def rendered(seed: int, scanned: bool, publaynet: bool = False) -> DocumentPage:
    page = DocumentPage(random.Random(seed), "en", scanned=scanned, publaynet=publaynet)
    page.render()
    return page


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4, 5])
def test_boxes_hold_all_the_ink_and_every_box_has_some(seed):
    """On a born-digital page every dark pixel lies in a layout box or an OCR line (1 px of
    anti-aliasing around), and every box and every line has ink."""
    page = rendered(seed, scanned=False)
    ink = np.asarray(page.image.convert("L")) < DARK
    boxes = [box for _, box in page.boxes]
    outside = ink & ~covered(ink.shape, boxes + page.ocr_boxes, margin=1)
    assert outside.sum() == 0, f"{outside.sum()} ink pixels outside every box"
    height, width = ink.shape
    for x, y, w, h in boxes + page.ocr_boxes:
        assert ink[y : y + h, x : x + w].any(), (x, y, w, h)
        assert x >= 0 and y >= 0 and x + w <= width and y + h <= height, (x, y, w, h)
    assert len(page.ocr_words) == len(page.ocr_boxes) > 20
    assert {name for name, _ in page.boxes} <= set(CDLA_CLASSES)


def table_lines(page: DocumentPage) -> list[list[tuple]]:
    """The OCR lines inside each table of ``page``: ``(x0, y0, x1, y1, text)``."""
    tables = []
    for name, (x, y, w, h) in page.boxes:
        if name == "Table":
            tables.append(
                [
                    (lx, ly, lx + lw, ly + lh, text)
                    for (lx, ly, lw, lh), text in zip(page.ocr_boxes, page.ocr_words)
                    if lx >= x and ly >= y and lx + lw <= x + w and ly + lh <= y + h
                ]
            )
    return tables


def test_table_cells_wrap_inside_their_column():
    """Tables of words wrap a cell's text over lines of its own column (lines of words stacked
    at one left edge, right of the first column), and no cell's line runs into its
    neighbour's on the same row."""
    wrapped_cells = 0
    for seed in range(40):
        for lines in table_lines(rendered(seed, scanned=False)):
            assert len(lines) >= 6
            first_column = min(line[0] for line in lines) + 10
            for a in lines:
                for b in lines:
                    same_row = a != b and a[1] < b[3] and b[1] < a[3]
                    assert not (same_row and a[0] < b[2] and b[0] < a[2]), (seed, a, b)
                    words = re.search("[a-z]", a[4]) and re.search("[a-z]", b[4])
                    gap = b[1] - a[3]
                    stacked = a[0] == b[0] > first_column and 0 < gap < 0.6 * (a[3] - a[1])
                    wrapped_cells += bool(words and stacked)
    assert wrapped_cells >= 10


def test_rotate_box_follows_the_rotated_image():
    image = Image.new("L", (400, 300), 255)
    box = [250, 40, 60, 20]
    ImageDraw.Draw(image).rectangle([250, 40, 309, 59], fill=0)
    for degrees in (0.8, -0.6, 5.0):
        turned = image.rotate(degrees, Image.Resampling.BICUBIC, center=(200, 150), fillcolor=255)
        x0, y0, x1, y1 = Image.eval(turned, lambda v: 255 if v < DARK else 0).getbbox()
        ex, ey, ew, eh = rotate_box(box, degrees, (200, 150))
        # the box holds the rotated ink, and is at most 2 px wider on any side
        slack = (x0 - ex, y0 - ey, ex + ew - x1, ey + eh - y1)
        assert all(0 <= side <= 2 for side in slack), (degrees, slack)


def test_scanned_pages_keep_their_boxes_on_the_ink():
    """Rotated, blurred, noisy, compressed: the boxes still hold the text lines' ink."""
    degraded = 0
    for seed in range(12):
        page = rendered(seed, scanned=True)
        clean = rendered(seed, scanned=False)
        if page.image.tobytes() == clean.image.tobytes():
            continue
        degraded += 1
        ink = np.asarray(page.image.convert("L")) < 100  # clear ink, not noise
        inside = covered(ink.shape, [b for _, b in page.boxes] + page.ocr_boxes, margin=2)
        assert (ink & ~inside).sum() <= 0.002 * ink.sum(), seed
        assert page.ocr_words == clean.ocr_words
    assert degraded >= 6  # scans (30%) and JPEG copies (35%) of twelve pages


def test_document_style_is_reproducible_in_either_class_set(tmp_path):
    first = synthetic.generate(tmp_path / "a", 4, "publaynet", seed=5, style="document")
    again = synthetic.generate(tmp_path / "b", 4, "publaynet", seed=5, style="document")
    assert first["train"].read_text() == again["train"].read_text()
    for name in ("en_00000", "en_00003"):
        ocr = (tmp_path / "a" / "OCR" / f"{name}.json").read_text()
        assert ocr == (tmp_path / "b" / "OCR" / f"{name}.json").read_text()
    coco = json.loads(first["train"].read_text())
    assert [c["name"] for c in coco["categories"]] == list(PUBLAYNET_CLASSES)
    sizes = {(image["width"], image["height"]) for image in coco["images"]}
    assert sizes <= {(612, 792), (595, 842)}
    for image in coco["images"]:
        with Image.open(tmp_path / "a" / "images" / image["file_name"]) as png:
            assert png.size == (image["width"], image["height"])
    cdla = synthetic.generate(tmp_path / "c", 4, "cdla", seed=5, style="document")
    names = {c["id"]: c["name"] for c in json.loads(cdla["train"].read_text())["categories"]}
    found = {names[a["category_id"]] for a in json.loads(cdla["train"].read_text())["annotations"]}
    assert {"Text", "Title", "Header"} <= found
    with pytest.raises(ValueError, match="style 'fancy' is not one of"):
        synthetic.generate(tmp_path / "d", 1, style="fancy")


def test_document_pdf_text_layer_reads_the_drawn_lines(tmp_path):
    """The born-digital variant: each word drawn is real text at its place, so the PDF's text
    layer gives back the drawn lines (justified lines too)."""
    from ditod.pages.pdf_text import PdfTextLayer

    synthetic.generate(tmp_path, 2, seed=1, style="document", pdf=True)
    same = total = 0
    for name in ("en_00000", "en_00001"):
        truth = json.loads((tmp_path / "OCR" / f"{name}.json").read_text())
        with PdfTextLayer(tmp_path / "pdf" / f"{name}.pdf") as layer:
            read = layer.read(0, truth["W"], truth["H"]).page
        lines = set(read["words"])
        total += len(truth["words"])
        same += sum(line in lines for line in truth["words"])
    assert same >= 0.95 * total, f"{same} of {total} lines read back"


def inside(box, block, margin: int = 1) -> bool:
    x, y, w, h = box
    bx, by, bw, bh = block
    return (
        bx - margin <= x
        and by - margin <= y
        and x + w <= bx + bw + margin
        and (y + h <= by + bh + margin)
    )


def test_text_in_pictures_is_in_the_ocr_truth_and_stays_in_the_pdfs_picture(tmp_path):
    """What an OCR engine reads in a plot (tick and axis labels) and in an equation (one line of
    plain text over it) are OCR lines of the page, on ink; the PDF variant keeps them in its
    picture (drawn, not erased) and not in its text layer."""
    import pypdfium2

    from ditod.pages.pdf_text import PdfTextLayer

    page = rendered(5, scanned=False)
    figures = [box for name, box in page.boxes if name == "Figure"]
    equations = [box for name, box in page.boxes if name == "Equation"]
    assert len(figures) == 1 and len(equations) == 1
    picture = [(page.ocr_boxes[i], page.ocr_words[i]) for i in sorted(page.picture_lines)]
    for box, _ in picture:
        assert any(inside(box, block) for block in figures + equations), box
    plot = [words for box, words in picture if inside(box, figures[0])]
    assert len(plot) >= 8, plot
    assert sum(bool(re.fullmatch(r"[−\d.]+", words)) for words in plot) >= 5, plot  # ticks
    reading = [words for box, words in picture if inside(box, equations[0])]
    assert len(reading) == 1 and re.search(r"[=≥]", reading[0]), reading
    ink = np.asarray(page.image.convert("L")) < DARK
    for (x, y, w, h), _ in picture:
        assert ink[y : y + h, x : x + w].any(), (x, y, w, h)

    synthetic.write_pdf(page, tmp_path / "page.pdf")
    width, height = page.image.size
    with PdfTextLayer(tmp_path / "page.pdf") as layer:
        read = layer.read(0, width, height).page
    in_pictures = [
        words
        for box, words in zip(read["bbox"], read["words"])
        if any(inside(box, block, margin=-2) for block in figures + equations)
    ]
    assert in_pictures == []
    document = pypdfium2.PdfDocument(str(tmp_path / "page.pdf"))
    try:
        drawn = document[0].render(scale=1).to_pil().convert("L").resize((width, height))
    finally:
        document.close()
    pdf_ink = np.asarray(drawn) < DARK
    kept = sum(pdf_ink[y : y + h, x : x + w].any() for (x, y, w, h), _ in picture)
    assert kept == len(picture), f"{len(picture) - kept} picture lines erased from the PDF"


def test_chinese_document_pages_wrap_by_character_and_keep_their_boxes():
    try:
        cjk_font = synthetic.find_font("zh")
    except FileNotFoundError as error:
        pytest.skip(str(error))
    page = DocumentPage(random.Random(3), "zh", font=cjk_font, scanned=False)
    page.render()
    ink = np.asarray(page.image.convert("L")) < DARK
    boxes = [box for _, box in page.boxes]
    assert (ink & ~covered(ink.shape, boxes + page.ocr_boxes, margin=1)).sum() == 0
    paragraphs = [w for w in page.ocr_words if len(w) > 20 and not any(c.isdigit() for c in w)]
    assert paragraphs and all(any("\u4e00" <= c <= "\u9fff" for c in line) for line in paragraphs)
    # no space between two Chinese characters, none at a line's ends, no line opened by "，" or
    # "。"; Latin terms whole and spaced from the characters around them
    lines = page.ocr_words
    assert not any(re.search(r"[\u4e00-\u9fff] [\u4e00-\u9fff]", line) for line in lines)
    assert all(line == line.strip() and line[0] not in "，。、" for line in lines)
    latin = {word for line in paragraphs for word in re.findall(r"[A-Za-z][A-Za-z0-9-]*", line)}
    assert latin and latin <= set(CHINESE_LATIN_TERMS)


@pytest.mark.parametrize("seed", range(6))
def test_chinese_lines_never_break_inside_a_latin_term(seed):
    try:
        cjk_font = synthetic.find_font("zh")
    except FileNotFoundError as error:
        pytest.skip(str(error))
    page = DocumentPage(random.Random(seed), "zh", font=cjk_font, scanned=False)
    page.render()
    text = " ".join(w for w in page.ocr_words if re.search("[\u4e00-\u9fff]", w))
    text = re.sub(r"\([a-f]\)", "", text)  # list labels "(a)", "(b)"
    latin = set(re.findall(r"[A-Za-z][A-Za-z0-9-]*", text))
    assert latin <= set(CHINESE_LATIN_TERMS), latin - set(CHINESE_LATIN_TERMS)


def reference_pages(seeds) -> set:
    return {s for s in seeds if any(n == "Reference" for n, _ in rendered(s, False).boxes)}


def test_the_reference_list_is_drawn_per_page_not_per_block(monkeypatch):
    """Whether a page ends its article (declarations, references) is drawn once a page: pages
    of longer paragraphs (fewer blocks) end one as often (a draw per block made it rarer)."""
    seeds = range(60)
    monkeypatch.setattr(document_pages, "PARAGRAPH_SENTENCES", (2, 3))
    short = reference_pages(seeds)
    monkeypatch.setattr(document_pages, "PARAGRAPH_SENTENCES", (9, 10))
    long = reference_pages(seeds)
    assert len(short) >= 4 and len(long) >= 4
    assert len(short ^ long) <= 2, (short, long)


def test_headings_take_the_pages_look_and_common_section_names():
    """Section headings: numbered on some pages and not on others, common section names among
    them, and drawn in the page's heading colour (blue pages' heading ink is blue)."""
    numbered = plain = named = blue = 0
    for seed in range(40):
        page = rendered(seed, scanned=False)
        lines = dict(zip(map(tuple, page.ocr_boxes), page.ocr_words))
        pixels = np.asarray(page.image.convert("RGB")).astype(int)
        for name, (x, y, w, h) in page.boxes:
            if name != "Title" or y < 120:  # section headings, not the paper's title
                continue
            text = " ".join(t for (lx, ly, _, _), t in lines.items() if lx == x and ly == y)
            numbered += bool(re.match(r"\d+(\.\d+)?\. ", text))
            plain += not re.match(r"\d", text)
            named += text.split(". ")[-1].lower() in {n.lower() for n in SECTION_NAMES["en"]}
            if page.style.heading_colour == (25, 60, 130):
                ink = pixels[y : y + h, x : x + w].reshape(-1, 3)
                ink = ink[ink.sum(axis=1) < 450]
                blue += bool(len(ink)) and (ink[:, 2] > ink[:, 0] + 40).mean() > 0.8
    assert numbered >= 10 and plain >= 10 and named >= 5 and blue >= 2
