"""The PDF text layer on what real PDFs bring (datasets/pdf_cases.py): rotated pages, line-end
hyphens, table cells, mirrored and turned text, CJK; pages it cannot read go to OCR with a
reason; one answer through the CLI, the Python API and inference."""

import ctypes
import json
import math
import subprocess
import sys
from pathlib import Path

import pypdfium2
import pypdfium2.raw as pdfium_c
import pytest

from ditod.data import pdf_cases, synthetic
from ditod.pages.glyph_lines import NEWLINE, SPACE, Glyph, segments
from ditod.pages.ocr_runner import PageJob, run_ocr_jobs
from ditod.pages.pdf_text import PdfTextLayer

ROOT = Path(__file__).resolve().parents[1]
DPI = 150


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pdf_cases")
    return folder, pdf_cases.write_cases(folder)


def iou(a, b) -> float:
    inter = max(0, min(a[2], b[2]) - max(a[0], b[0])) * max(0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union


def read_case(folder: Path, case: dict) -> dict:
    with PdfTextLayer(folder / case["pdf"]) as layer:
        width, height = layer.page_size(0, DPI)
        result = layer.read(0, width, height)
    assert result.page is not None, result.reason
    return result.page


CASES = ["rotated_90", "rotated_270", "hyphenated", "tables", "mirrored", "margin", "chinese"]


@pytest.mark.parametrize("name", CASES)
def test_each_case_reads_as_its_lines_where_they_are_drawn(cases, name):
    folder, truth = cases
    if name not in truth:
        pytest.skip("no CJK TrueType font on this machine (fonts-arphic-uming or -wqy)")
    page = read_case(folder, truth[name])
    expected = truth[name]["segments"]
    assert page["words"] == [segment["text"] for segment in expected]
    scale = DPI / 72
    for (x, y, w, h), segment in zip(page["bbox"], expected):
        drawn = [v * scale for v in segment["box"]]
        assert iou((x, y, x + w, y + h), drawn) > 0.85, (segment["text"], drawn, (x, y, w, h))


def test_line_end_hyphens_are_hyphens_and_no_segment_holds_a_control_character(cases):
    folder, truth = cases
    page = read_case(folder, truth["hyphenated"])
    assert page["words"][0].endswith("interdisci-") and "well-" in page["words"][2]
    for name, case in truth.items():
        words = read_case(folder, case)["words"]
        assert not [w for w in words if any(ord(c) < 0x20 or ord(c) == 0x7F for c in w)], name


def scattered_glyphs_pdf(path: Path, angle: float = 0.0) -> Path:
    """Glyphs each drawn on their own far apart (``angle`` 0), or lines set at ``angle``
    degrees: text layers whose positions form no lines along the page's axes."""
    document = pypdfium2.PdfDocument.new()
    page = document.new_page(612, 792)
    font = pdf_cases._load_font(document, pdf_cases.LATIN_FONT)
    cos, sin = math.cos(math.radians(angle)), math.sin(math.radians(angle))
    for k in range(40):
        if angle:
            text, x, y = "slanted text line", 100, 100 + 15 * k
        else:
            text, x, y = "abcdefghij"[k % 10], 60 + (k * 37) % 480, 80 + (k * 53) % 600
        obj = pdfium_c.FPDFPageObj_CreateTextObj(document, font, 10)
        encoded = ctypes.create_string_buffer((text + "\0").encode("utf-16-le"))
        pdfium_c.FPDFText_SetText(obj, ctypes.cast(encoded, pdfium_c.FPDF_WIDESTRING))
        pdfium_c.FPDFPageObj_Transform(obj, cos, sin, -sin, cos, x, 792 - y)
        pdfium_c.FPDFPage_InsertObject(page, obj)
    page.gen_content()
    document.save(str(path))
    document.close()
    return path


@pytest.mark.parametrize(
    ("angle", "reason"), [(0.0, "are single glyphs"), (30.0, "are set at an angle")]
)
def test_a_layer_that_forms_no_lines_goes_to_ocr_with_its_reason(tmp_path, angle, reason):
    pdf = scattered_glyphs_pdf(tmp_path / "odd.pdf", angle)
    with PdfTextLayer(pdf) as layer:
        result = layer.read(0, *layer.page_size(0, DPI))
    assert (
        result.page is None and reason in result.reason and "text layer unusable" in result.reason
    )


def test_glyph_grouping_follows_the_direction_of_the_text():
    def run(text, start, across, direction, size=10):
        """Glyphs 7 px wide, 1 px apart, a space 3 px (0.3 of the size), from ``start``."""
        glyphs, cursor, sign = [], start, -1 if direction == "left" else 1
        for char in text:
            if char == " ":
                glyphs.append(SPACE)
                cursor += sign * 3
                continue
            a, b = sorted((cursor, cursor + sign * 7))
            box = (
                (a, across, b, across + size)
                if direction != "down"
                else (across, a, across + size, b)
            )
            glyphs.append(Glyph(char, box, direction))
            cursor += sign * 8
        return glyphs, cursor

    mirrored, _ = run("Mirrored words", 400, 50, "left")
    first, end = run("Cell one", 50, 100, "right")
    second, _ = run("Cell two", end + 15, 100, "right")  # a 1.5-size gap: another cell
    down, _ = run("Down", 200, 500, "down")
    found = segments([*mirrored, NEWLINE, *first, *second, *down])
    assert [s.text for s in found] == ["Mirrored words", "Cell one", "Cell two", "Down"]
    assert [s.direction for s in found] == ["left", "right", "right", "down"]
    assert found[0].box == (400 - 13 * 8 - 3 + 1, 50, 400, 60)  # drawn right to left


@pytest.mark.slow
def test_one_answer_through_the_cli_the_api_and_inference(cases, tmp_path):
    folder, truth = cases
    docs = tmp_path / "docs"
    docs.mkdir()
    for name in ("rotated_90", "tables"):
        (docs / truth[name]["pdf"]).write_bytes((folder / truth[name]["pdf"]).read_bytes())
    cli = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "ocr_pages.py"), str(docs), "--out",
         str(tmp_path / "OCR"), "--pages-dir", str(tmp_path / "pages"), "--dpi", str(DPI)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert cli.returncode == 0, cli.stderr[-2000:]
    jobs = []
    for name in ("rotated_90", "tables"):
        with PdfTextLayer(docs / f"{name}.pdf") as layer:
            api = layer.read(0, *layer.page_size(0, DPI)).page
        written = (tmp_path / "OCR" / name / "page-0001.json").read_text(encoding="utf-8")
        assert written == json.dumps(api, ensure_ascii=False), name
        image = tmp_path / "pages" / name / "page-0001.png"
        jobs.append(PageJob(image, tmp_path / "again" / f"{name}.json", docs / f"{name}.pdf", 0))
    # the path tools/infer.py takes (run_ocr_jobs over its rendered pages), in this process
    summary = run_ocr_jobs(jobs, tmp_path / "again" / "failed.txt", workers=1, page_timeout=None)
    assert summary.text_layer == 2
    for job in jobs:
        name = job.target.stem
        again = job.target.read_bytes()
        assert again == (tmp_path / "OCR" / name / "page-0001.json").read_bytes(), name


@pytest.mark.slow
def test_pdf_segments_and_ocr_lines_agree_on_born_digital_pages(tmp_path):
    """Item by item, the text layer's segments are the default OCR engine's lines (IoU >= 0.5
    both ways on >= 90% of them): a model trained on OCR sees the same inputs on PDF pages."""
    from ditod.pages.engines import build_engine
    from ditod.pages.page_inputs import render_pdf
    from ditod.pages.page_ocr import ocr_page

    synthetic.generate(tmp_path, pages=2, seed=11, split_val=0.0, pdf=True)
    engine = build_engine("rapidocr", threads=2)
    ocr_share, pdf_share = [], []
    for pdf in sorted((tmp_path / "pdf").glob("*.pdf")):
        (image,) = render_pdf(pdf, tmp_path / "rendered" / pdf.stem, DPI)
        with PdfTextLayer(pdf) as layer:
            page = layer.read(0, *layer.page_size(0, DPI)).page
        pdf_boxes = [(x, y, x + w, y + h) for x, y, w, h in page["bbox"]]
        ocr_boxes = [(x, y, x + w, y + h) for x, y, w, h in ocr_page(engine, image)["bbox"]]
        ocr_share += [any(iou(o, p) >= 0.5 for p in pdf_boxes) for o in ocr_boxes]
        pdf_share += [any(iou(p, o) >= 0.5 for o in ocr_boxes) for p in pdf_boxes]
    assert sum(ocr_share) / len(ocr_share) >= 0.9 and sum(pdf_share) / len(pdf_share) >= 0.9
