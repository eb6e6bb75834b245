"""OCR preprocessing with the default engine for real: recall and boxes on rendered pages,
resume, kill -9, corrupt and blank pages, unavailable engines."""

import importlib.util
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from ditod.data import synthetic as synthetic_pages
from ditod.fonts import cjk_fonts, find_cjk_font
from ditod.pages.ocr_json import is_valid_ocr_json
from ditod.pages.text_match import CharacterMatch, character_match
from layoutlmv3 import OCRPageTokenizer

ROOT = Path(__file__).resolve().parents[1]
CLI = ROOT / "tools" / "ocr_pages.py"

pytestmark = pytest.mark.slow


def ocr_cli(*args, timeout=600):
    return subprocess.run(
        [sys.executable, str(CLI), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """3 English pages with known lines (the generator's exact OCR kept aside as truth)."""
    root = tmp_path_factory.mktemp("ocr")
    synthetic_pages.generate(root, pages=3, seed=5, split_val=0.0, columns=(1,))
    shutil.move(root / "OCR", root / "truth")
    return root


def iou(a, b):
    ax0, ay0, aw, ah = a
    bx0, by0, bw, bh = b
    w = max(0.0, min(ax0 + aw, bx0 + bw) - max(ax0, bx0))
    h = max(0.0, min(ay0 + ah, by0 + bh) - max(ay0, by0))
    return w * h / (aw * ah + bw * bh - w * h)


def test_default_engine_reads_the_words_where_they_are(rendered, tmp_path):
    out = tmp_path / "OCR"
    result = ocr_cli(rendered / "images", "--out", out, "--workers", 2)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "3 OCR'd, 0 skipped" in result.stdout
    found_words, total_words, matched_lines, total_lines = 0, 0, 0, 0
    for truth_file in sorted((rendered / "truth").glob("*.json")):
        truth = json.loads(truth_file.read_text())
        page = json.loads((out / truth_file.name).read_text())
        assert (page["W"], page["H"]) == (truth["W"], truth["H"])
        assert page["engine"]["name"] == "rapidocr"
        ocr_words = set(" ".join(page["words"]).lower().split())
        for text, box in zip(truth["words"], truth["bbox"]):
            words = [w for w in text.lower().split() if len(w) > 3]
            total_words += len(words)
            found_words += sum(w in ocr_words for w in words)
            if len(text) >= 20:  # full lines: a detected line box must sit on it
                total_lines += 1
                matched_lines += max((iou(box, b) for b in page["bbox"]), default=0) >= 0.5
    assert found_words / total_words >= 0.8, (found_words, total_words)
    assert matched_lines / total_lines >= 0.8, (matched_lines, total_lines)


def test_rerun_redoes_only_missing_and_invalid_pages(rendered, tmp_path):
    out = tmp_path / "OCR"
    assert ocr_cli(rendered / "images", "--out", out, "--workers", 1).returncode == 0
    first, second, third = sorted(out.glob("*.json"))
    first.unlink()
    second.write_text('{"words": ["a"], "bbox": [')  # truncated by a crash
    before = third.stat().st_mtime_ns
    result = ocr_cli(rendered / "images", "--out", out, "--workers", 1)
    assert "2 OCR'd, 1 skipped" in result.stdout
    assert is_valid_ocr_json(first) and is_valid_ocr_json(second)
    assert third.stat().st_mtime_ns == before


def test_corrupt_page_is_counted_and_blank_page_is_empty(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    Image.new("RGB", (300, 200), "white").save(images / "blank.png")
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(images / "broken.jpg")
    data = (images / "broken.jpg").read_bytes()
    (images / "broken.jpg").write_bytes(data[: len(data) // 3])
    result = ocr_cli(images, "--workers", 1)
    assert result.returncode == 1
    assert "1 OCR'd, 0 skipped" in result.stdout and "1 failed" in result.stdout
    blank = json.loads((tmp_path / "OCR" / "blank.json").read_text())
    assert blank["words"] == [] and blank["bbox"] == [] and (blank["W"], blank["H"]) == (300, 200)
    failed = (tmp_path / "OCR" / "ocr_failed.txt").read_text()
    assert "broken.jpg" in failed and "cannot read image" in failed


def test_unavailable_engine_says_what_to_install(tmp_path):
    (tmp_path / "images").mkdir()
    Image.new("RGB", (50, 50), "white").save(tmp_path / "images" / "a.png")
    if importlib.util.find_spec("paddleocr") is not None:
        pytest.skip("paddleocr is installed here")
    result = ocr_cli(tmp_path / "images", "--engine", "paddleocr", "--workers", 1)
    assert result.returncode == 2
    assert "pip install 'layoutlmv3-ditod[paddle]'" in result.stderr


MARGIN_STAMP = "本文已被录用 arXiv:2204.08387v3 [cs.CV] 2022年7月19日"


def test_a_chinese_page_with_latin_terms_and_a_vertical_stamp_is_read(tmp_path, xlmr_folder):
    """Mixed-script lines (Chinese with Latin terms, numbers, full-width punctuation) read
    character for character; a stamp up the margin read as vertical segments, last in reading
    order, and tokenized like any line."""
    if not cjk_fonts():
        pytest.skip("no CJK font installed (scripts/install.sh installs one)")
    # born-digital pages (pdf=True: no scan degradation), read whole by the default engine
    synthetic_pages.generate(
        tmp_path, 2, language="zh", seed=2, split_val=0.0, style="document", pdf=True
    )
    font = ImageFont.truetype(find_cjk_font(), 13)
    for path in (tmp_path / "images").glob("*.png"):
        page = Image.open(path).convert("RGB")
        stamp = Image.new("RGB", (round(font.getlength(MARGIN_STAMP)) + 4, 18), "white")
        ImageDraw.Draw(stamp).text((2, 1), MARGIN_STAMP, fill="black", font=font)
        page.paste(stamp.rotate(90, expand=True), (8, 150))  # in the left margin
        page.save(path)
    shutil.move(tmp_path / "OCR", tmp_path / "truth")
    result = ocr_cli(tmp_path / "images", "--out", tmp_path / "OCR", "--workers", 1)
    assert result.returncode == 0, result.stderr[-2000:]
    total = CharacterMatch()
    for truth_path in sorted((tmp_path / "truth").glob("*.json")):
        truth = json.loads(truth_path.read_text())
        path = tmp_path / "OCR" / truth_path.name
        assert is_valid_ocr_json(path)
        read = json.loads(path.read_text())
        total = total + character_match(truth, read)
        latin = [
            w for line in truth["words"] for w in re.findall(r"[A-Za-z][A-Za-z0-9.-]{2,}", line)
        ]
        read_text = " ".join(read["words"])
        assert latin and sum(w in read_text for w in latin) >= 0.9 * len(latin)

        segments = OCRPageTokenizer(xlmr_folder, reading_order="columns").tokenize_segments(read)
        x0, y0, x1, y1 = segments.boxes.T
        vertical = np.flatnonzero(y1 - y0 >= 4 * (x1 - x0))  # the stamp, rotated axis labels
        assert (x1[vertical] < 60).any()  # the stamp, in the margin
        assert vertical.tolist() == list(range(len(x0) - len(vertical), len(x0)))  # read last
        stamp = "".join(
            text for (x, _, w, h), text in zip(read["bbox"], read["words"]) if h >= 4 * w and x < 60
        )
        assert "arXiv" in stamp and "2022" in stamp
    assert total.recall >= 0.95 and total.precision >= 0.85, total
