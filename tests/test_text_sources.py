"""Text without OCR and cheaper OCR: PDF text layers (with the OCR fallback), DocLayNet's text
cells, first-token OCR, and the default OCR layout."""

import json
import shutil
from pathlib import Path

import numpy as np
import pypdfium2
import pytest
from conftest import import_script, write_rectangle_coco
from ocr_test_engines import OneLineEngine
from PIL import Image

from ditod.data import synthetic
from ditod.data.dataset_check import check_dataset
from ditod.data.mapper import LayoutDatasetMapper
from ditod.pages.engines import ENGINES, build_engine
from ditod.pages.first_tokens import first_words, prefix_widths, word_gaps
from ditod.pages.ocr_json import is_valid_ocr_json
from ditod.pages.ocr_runner import PageJob, default_layout, run_ocr_jobs
from ditod.pages.page_inputs import collect_pages
from ditod.pages.page_ocr import ocr_page
from ditod.pages.pdf_text import TEXT_LAYER_ENGINE, PdfTextLayer
from layoutlmv3.tokenization import FirstTokensMismatch, OCRPageTokenizer

doclaynet = import_script("datasets/doclaynet_text.py")
ocr_cli = import_script("tools/ocr_pages.py")
DPI = 144  # 2 pixels per point of the 612 x 792 synthetic pages


@pytest.fixture(scope="module")
def born_digital(tmp_path_factory):
    """3 synthetic pages as PNG, exact text (OCR/) and born-digital PDF (pdf/)."""
    root = tmp_path_factory.mktemp("born_digital")
    synthetic.generate(root, pages=3, seed=5, split_val=0.0, pdf=True)
    return root


def iou(a, b) -> float:
    ax0, ay0, aw, ah = a
    bx0, by0, bw, bh = b
    w = min(ax0 + aw, bx0 + bw) - max(ax0, bx0)
    h = min(ay0 + ah, by0 + bh) - max(ay0, by0)
    inter = max(w, 0) * max(h, 0)
    return inter / (aw * ah + bw * bh - inter)


def test_text_layer_gives_the_pages_exact_lines_at_their_places(born_digital):
    for pdf in sorted((born_digital / "pdf").glob("*.pdf")):
        truth = json.loads((born_digital / "OCR" / f"{pdf.stem}.json").read_text())
        with PdfTextLayer(pdf) as layer:
            width, height = layer.page_size(0, DPI)
            page = layer.read(0, width, height).page
        assert (width, height) == (1224, 1584) and (page["W"], page["H"]) == (width, height)
        assert page["engine"]["name"] == TEXT_LAYER_ENGINE
        # every line, in drawing order, letter for letter (runs of spaces read as one)
        assert page["words"] == [" ".join(line.split()) for line in truth["words"]]
        scaled = [[v * DPI / 72 for v in box] for box in truth["bbox"]]
        overlaps = [iou(a, b) for a, b in zip(page["bbox"], scaled)]
        assert min(overlaps) > 0.6, min(overlaps)


@pytest.mark.parametrize("rotation", [90, 180, 270])
def test_text_layer_boxes_follow_a_rotated_page(born_digital, tmp_path, rotation):
    document = pypdfium2.PdfDocument(str(born_digital / "pdf" / "en_00000.pdf"))
    document[0].set_rotation(rotation)
    document.save(str(tmp_path / "rotated.pdf"))
    document.close()
    pages, failed = collect_pages([tmp_path / "rotated.pdf"], tmp_path / "render", dpi=72)
    assert not failed
    image = np.asarray(Image.open(pages[0].image).convert("L"))
    with PdfTextLayer(tmp_path / "rotated.pdf") as layer:
        page = layer.read(0, image.shape[1], image.shape[0]).page
    assert (page["W"], page["H"]) == ((792, 612) if rotation != 180 else (612, 792))
    for x, y, w, h in page["bbox"]:  # each line box covers drawn text
        ink = image[int(y) : int(y + h) + 1, int(x) : int(x + w) + 1] < 128
        assert ink.mean() > 0.05


def garbage_pdf(source: Path, target: Path) -> Path:
    """``source`` with its font's ToUnicode map unlinked: glyphs extract without Unicode."""
    data = source.read_bytes()
    assert data.count(b"/ToUnicode") == 1
    target.write_bytes(data.replace(b"/ToUnicode", b"/XoUnicode"))
    return target


def scanned_pdf(source_png: Path, target: Path) -> Path:
    Image.open(source_png).convert("RGB").save(target, resolution=72)
    return target


def test_pages_without_a_usable_text_layer_are_ocrd_and_counted(born_digital, tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    shutil.copy(born_digital / "pdf" / "en_00000.pdf", docs / "digital.pdf")
    garbage_pdf(born_digital / "pdf" / "en_00001.pdf", docs / "garbage.pdf")
    scanned_pdf(born_digital / "images" / "en_00002.png", docs / "scan.pdf")
    pages, failed = collect_pages([docs], tmp_path / "pages", dpi=72)
    assert not failed and len(pages) == 3
    jobs = [
        PageJob(p.image, tmp_path / "OCR" / f"{p.name}.json", p.pdf, p.page_index) for p in pages
    ]
    summary = run_ocr_jobs(
        jobs, tmp_path / "OCR" / "failed.txt", OneLineEngine, workers=1, page_timeout=None
    )
    assert (summary.text_layer, summary.done, summary.failed) == (1, 2, [])
    reasons = dict(summary.fallback)
    assert reasons == {
        f"{docs / 'garbage.pdf'}#page=1": reasons[f"{docs / 'garbage.pdf'}#page=1"],
        f"{docs / 'scan.pdf'}#page=1": "no text layer",
    }
    assert reasons[f"{docs / 'garbage.pdf'}#page=1"].startswith("text layer unusable: ")
    names = ("digital/page-0001", "garbage/page-0001", "scan/page-0001")
    engines = {
        name: json.loads((tmp_path / "OCR" / f"{name}.json").read_text())["engine"]["name"]
        for name in names
    }
    assert engines == {
        "digital/page-0001": TEXT_LAYER_ENGINE,
        "garbage/page-0001": "one-line",
        "scan/page-0001": "one-line",
    }
    again = run_ocr_jobs(
        jobs, tmp_path / "OCR" / "failed.txt", OneLineEngine, workers=1, page_timeout=None
    )
    assert (again.skipped, again.done, again.text_layer) == (3, 0, 0)


def test_ocr_cli_takes_pdf_text_and_ocrs_images(born_digital, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(ENGINES, "one-line", OneLineEngine)
    docs = tmp_path / "docs"
    docs.mkdir()
    shutil.copy(born_digital / "pdf" / "en_00000.pdf", docs / "paper.pdf")
    shutil.copy(born_digital / "images" / "en_00001.png", docs / "scan.png")
    out = tmp_path / "OCR"
    argv = [
        str(docs),
        "--out",
        str(out),
        "--engine",
        "one-line",
        "--workers",
        "1",
        "--page-timeout",
        "0",
    ]  # in this process: the engine exists only here
    assert ocr_cli.main(argv) == 0
    assert "1 from PDF text layers, 1 OCR'd" in capsys.readouterr().out
    paper = json.loads((out / "paper" / "page-0001.json").read_text())
    assert paper["engine"]["name"] == TEXT_LAYER_ENGINE and len(paper["words"]) > 20
    rendered = Image.open(tmp_path / "pages" / "paper" / "page-0001.png")
    assert rendered.size == (paper["W"], paper["H"])
    assert json.loads((out / "scan.json").read_text())["engine"]["name"] == "one-line"
    assert ocr_cli.main(argv) == 0
    rerun = capsys.readouterr().out
    assert "0 from PDF text layers, 0 OCR'd" in rerun and "2 skipped" in rerun


def line_image(words, gap=12, letter=7, height=20):
    """A black-on-white line: words of ``len(word)`` letters, each letter a ``letter`` px bar
    with 2 px between letters and ``gap`` px between words. Returns the image and each word's
    (first, last) column."""
    width = sum(len(w) * (letter + 2) for w in words) + gap * (len(words) + 1)
    image = np.full((height, width, 3), 255, np.uint8)
    x, spans = gap, []
    for word in words:
        start = x
        for _ in word:
            image[4 : height - 4, x : x + letter] = 0
            x += letter + 2
        spans.append((start, x - 3))
        x += gap - 2
    return image, spans


def test_prefix_cuts_land_one_ink_height_into_the_word_after_the_kth():
    image, spans = line_image(["layout", "detection", "of", "pages", "with", "text", "now"])
    gaps, height = word_gaps(image)
    assert len(gaps) == 6 and height == 12
    assert [g[1] for g in gaps] == [s[0] for s in spans[1:]]
    widths = prefix_widths(image, 3)  # 3 tokens: into word 4, then word 6; none past the end
    assert widths == [spans[3][0] + height, spans[5][0] + height]
    assert first_words("layout detection of pag", 3) == "layout detection of"
    assert first_words("layout detection of", 3) is None  # the 3rd word may be cut
    short, _ = line_image(["a", "short", "line"])
    assert prefix_widths(short, 3) == []


@pytest.mark.slow
def test_first_token_ocr_reads_the_same_first_tokens_and_is_refused_for_more(
    born_digital, tmp_path, bpe_folder
):
    image = born_digital / "images" / "en_00000.png"
    full = ocr_page(build_engine("rapidocr", threads=2), image)
    engine = build_engine("rapidocr", threads=2, first_tokens=3)
    start = ocr_page(engine, image)
    assert start["engine"]["first_tokens"] == 3
    # lines by their (full-line) box: the same first 3 words on >= 95% of all lines found
    lines, starts = lines_by_box(full), lines_by_box(start)
    same = [
        (lines.get(box) or "").split()[:3] == (starts.get(box) or "").split()[:3]
        for box in lines.keys() | starts.keys()
    ]
    assert len(same) > 40 and np.mean(same) >= 0.95, np.mean(same)
    long = [box for box, text in lines.items() if len(text.split()) > 5 and box in starts]
    cut = [len(starts[box].split()) == 3 for box in long]  # recognised only to their start
    assert len(long) > 15 and np.mean(cut) >= 0.8, np.mean(cut)

    path = tmp_path / "start.json"
    path.write_text(json.dumps(start))
    assert is_valid_ocr_json(path, first_tokens=3) and is_valid_ocr_json(path, first_tokens=2)
    assert not is_valid_ocr_json(path) and not is_valid_ocr_json(path, first_tokens=4)
    OCRPageTokenizer(bpe_folder, tokens_per_segment=3).tokenize_segments(start, str(path))
    for keep in (0, 5):
        with pytest.raises(FirstTokensMismatch, match=f"{path}: OCR read only the first 3 tokens"):
            OCRPageTokenizer(bpe_folder, tokens_per_segment=keep).tokenize_segments(
                start, str(path)
            )
    # even where missing OCR makes a page image-only, this mismatch stops the mapper
    tokenizer = OCRPageTokenizer(bpe_folder)
    mapper = LayoutDatasetMapper(
        is_train=False,
        augmentations=[],
        image_format="RGB",
        tokenizer=tokenizer,
        missing_ocr="image_only",
    )
    with pytest.raises(FirstTokensMismatch):
        mapper({"file_name": str(image), "ocr_file": str(path), "height": 792, "width": 612})


def test_first_tokens_is_refused_for_engines_without_it(tmp_path):
    with pytest.raises(ValueError, match="only implemented for rapidocr, not tesseract"):
        run_ocr_jobs([], tmp_path / "f.txt", "tesseract", first_tokens=3)


def test_default_ocr_layout_is_one_single_threaded_engine_per_core():
    assert default_layout(1) == (1, 1) and default_layout(2) == (2, 1)
    assert default_layout(16) == (16, 1)


def doclaynet_page(cells, width=1025, height=1025) -> dict:
    """A page of DocLayNet's extra JSON as published (metadata + text cells)."""
    return {
        "metadata": {
            "page_hash": "a" * 64,
            "original_filename": "report.pdf",
            "page_no": 3,
            "num_pages": 12,
            "original_width": 612,
            "original_height": 792,
            "coco_width": width,
            "coco_height": height,
            "collection": "ann_reports",
            "doc_category": "financial_reports",
        },
        "cells": [
            {
                "bbox": box,
                "text": text,
                "font": {"color": [0, 0, 0, 255], "name": "/F1", "size": 9.0},
            }
            for box, text in cells
        ],
    }


def test_doclaynet_cells_become_ocr_json_the_tokenizer_reads(tmp_path, bpe_folder):
    cells = tmp_path / "JSON"
    cells.mkdir()
    good = doclaynet_page(
        [
            ([72.3, 100.0, 420.5, 11.2], "Annual report 2019"),
            ([72.3, 120.0, 300.0, 11.2], " "),
            ([80, 140, 200, 11], "Revenue"),
        ]
    )
    (cells / f"{'a' * 64}.json").write_text(json.dumps(good))
    bad = doclaynet_page([([72, 100, 500, 1100], "corner format")])  # y + h beyond the page
    (cells / f"{'b' * 64}.json").write_text(json.dumps(bad))
    coco = tmp_path / "train.json"
    coco.write_text(
        json.dumps(
            {
                "images": [
                    {"id": 1, "file_name": f"{'a' * 64}.png", "width": 1025, "height": 1025},
                    {"id": 2, "file_name": f"{'c' * 64}.png", "width": 1025, "height": 1025},
                ]
            }
        )
    )
    out = tmp_path / "OCR"
    assert doclaynet.main(["--cells", str(cells), "--out", str(out)]) == 1
    page = json.loads((out / f"{'a' * 64}.json").read_text())
    assert page["words"] == ["Annual report 2019", "Revenue"]  # the blank cell is dropped
    assert page["bbox"] == [[72.3, 100.0, 420.5, 11.2], [80, 140, 200, 11]]
    assert (page["W"], page["H"]) == (1025, 1025) and is_valid_ocr_json(out / f"{'a' * 64}.json")
    encoded = OCRPageTokenizer(bpe_folder)(page)
    assert encoded.input_ids.numel() > 4
    assert not (out / f"{'b' * 64}.json").exists()
    with pytest.raises(ValueError, match=r"bbb+\.json: cell 0 box \[72, 100, 500, 1100\] is not"):
        doclaynet.convert_page(cells / f"{'b' * 64}.json")
    with pytest.raises(ValueError, match="cells are for a 1025x1025 page but the COCO image is"):
        doclaynet.convert_page(cells / f"{'a' * 64}.json", (1000, 1000))
    assert (
        doclaynet.main(["--cells", str(cells), "--out", str(tmp_path / "o2"), "--coco", str(coco)])
        == 1
    )
    assert (tmp_path / "o2" / f"{'a' * 64}.json").is_file()
    assert not (tmp_path / "o2" / f"{'b' * 64}.json").exists()  # not in the split


def test_checker_refuses_first_token_ocr_for_a_model_that_keeps_more(tmp_path):
    coco = write_rectangle_coco(tmp_path, num_images=2)
    for image in sorted((tmp_path / "images").iterdir()):
        page = {
            "words": ["Figure 1: a"],
            "bbox": [[5, 5, 60, 10]],
            "W": 160,
            "H": 128,
            "engine": {"name": "rapidocr", "version": "3.10.0", "first_tokens": 3},
        }
        (tmp_path / "OCR").mkdir(exist_ok=True)
        (tmp_path / "OCR" / f"{image.stem}.json").write_text(json.dumps(page))
    for keep, errors in ((3, 0), (2, 0), (0, 2), (5, 2)):
        report = check_dataset(coco, tmp_path / "images", tmp_path / "OCR", tokens_per_segment=keep)
        assert len(report.errors) == errors, report.errors
    assert (
        "OCR read only the first 3 tokens of each line (--first-tokens) but "
        "TOKENS_PER_SEGMENT is 5" in report.errors[0]
    )


def test_cjk_line_starts_are_cut_by_glyph_count_and_read_as_characters():
    from ditod.pages.first_tokens import (
        CHARACTERS_PER_TOKEN,
        cjk_prefix_width,
        first_characters,
        looks_cjk,
    )

    height, line = 20, np.full((24, 1200, 3), 255, np.uint8)
    for x in range(2, 1180, 26):  # glyph-like blocks, each with a gap inside (a radical)
        line[2:22, x : x + 4] = 0
        line[2:22, x + 13 : x + 17] = 0
    assert looks_cjk(line)
    assert cjk_prefix_width(line, 3) == (CHARACTERS_PER_TOKEN * 3 + 5) * height
    assert cjk_prefix_width(line[:, :300], 3) is None  # too short to save anything
    words, _ = line_image(["layout", "detection", "of", "pages", "with", "text", "now", "x"] * 3)
    assert not looks_cjk(words)
    assert first_characters("文档版面分析模型页面文本区域", 3) == "文档版面分析模型页面"
    assert first_characters("文档版面分析模型页面", 3) is None  # the 10th may be cut
    assert first_characters("layout detection of pages", 3) is None  # Latin: read it whole


def test_ocr_cli_refuses_a_tokenizer_without_first_tokens(tmp_path, capsys):
    ocr_pages = import_script("tools/ocr_pages.py")
    with pytest.raises(SystemExit):
        ocr_pages.parse_args([str(tmp_path), "--tokenizer", str(tmp_path / "tok")])
    assert "--tokenizer is for --first-tokens K" in capsys.readouterr().err
    args = ocr_pages.parse_args([str(tmp_path), "--first-tokens", "3", "--tokenizer", "tok"])
    assert args.tokenizer == "tok"


def test_cjk_cuts_verified_by_the_tokenizer():
    from ditod.pages.first_tokens import cjk_prefix_widths, first_tokens_read

    height, line = 20, np.full((24, 1200, 3), 255, np.uint8)
    for x in range(2, 1180, 26):
        line[2:22, x : x + 4] = 0
        line[2:22, x + 13 : x + 17] = 0
    assert cjk_prefix_widths(line, 3) == [(2 * 3 + 4) * height, (3 * 3 + 5) * height]
    assert cjk_prefix_widths(line[:, :300], 3) == []

    def pairs(text):  # a tokenizer of 2-character pieces, sentencepiece's mark first
        return ["▁", *(text[i : i + 2] for i in range(0, len(text), 2))]

    # the last glyph read may be cut: 7 characters kept, 4 pieces past the lone "▁"
    assert first_tokens_read("文档版面分析模型", 3, pairs) == "文档版面分析模"
    assert first_tokens_read("文档版面分析模", 3, pairs) is None  # 3 pieces: read wider
    assert first_tokens_read("layout detection of pages", 3, pairs) is None  # Latin: whole


def lines_by_box(page: dict) -> dict:
    """An OCR page dict's line texts keyed by their box."""
    return {tuple(box): text for box, text in zip(page["bbox"], page["words"])}


def chinese_page(folder: Path) -> Path:
    """One synthetic one-column Chinese page rendered into ``folder`` (skips without a CJK
    font); its image path."""
    try:
        synthetic.generate(folder, pages=1, language="zh", seed=2, split_val=0.0, columns=(1,))
    except FileNotFoundError as error:
        pytest.skip(str(error))
    return next((folder / "images").glob("*.png"))


@pytest.mark.slow
def test_first_token_ocr_cut_by_the_tokenizer_keeps_the_first_tokens(tmp_path):
    from layoutlmv3.tokenization import load_tokenizer, train_sentencepiece_tokenizer

    image = chinese_page(tmp_path)
    truth = json.loads(next((tmp_path / "OCR").glob("*.json")).read_text())["words"]
    folder = train_sentencepiece_tokenizer(truth * 20, tmp_path / "tokenizer", 400)
    tokenizer = load_tokenizer(folder)
    full = ocr_page(build_engine("rapidocr", threads=2), image)
    engine = build_engine("rapidocr", threads=2, first_tokens=3, tokenizer=folder)
    start = ocr_page(engine, image)
    assert start["engine"]["tokenizer"] == str(folder)

    def first(text):
        pieces = tokenizer.tokenize(text)
        return pieces[1:4] if len(pieces) > 1 and pieces[0] == "▁" else pieces[:3]

    lines, starts = lines_by_box(full), lines_by_box(start)
    boxes = lines.keys() | starts.keys()
    same = sum(first(lines.get(b) or "") == first(starts.get(b) or "") for b in boxes)
    assert same >= 0.9 * len(boxes), (same, len(boxes))
    long = [b for b in lines if len(lines[b]) > 20 and b in starts]
    assert long and sum(len(starts[b]) < 10 for b in long) >= 0.5 * len(long)  # the narrow cut


@pytest.mark.slow
def test_first_token_ocr_of_chinese_lines_keeps_their_first_characters(tmp_path):
    image = chinese_page(tmp_path)
    full = ocr_page(build_engine("rapidocr", threads=2), image)
    start = ocr_page(build_engine("rapidocr", threads=2, first_tokens=3), image)
    lines, starts = lines_by_box(full), lines_by_box(start)
    boxes = lines.keys() | starts.keys()
    same = sum((lines.get(b) or "")[:10] == (starts.get(b) or "")[:10] for b in boxes)
    assert same >= 0.9 * len(boxes)
    long = [b for b in lines if len(lines[b]) > 20 and b in starts]
    assert long and sum(len(starts[b]) == 10 for b in long) >= 0.8 * len(long)  # cut, not whole
