"""What users bring that is not right ends in one message naming the input and the problem, or
a counted skip: missing weights, PDFs that yield no page, degenerate page images, a page that
would stall OCR."""

import subprocess
import sys
import time
from pathlib import Path

import pytest
from ocr_test_engines import OneLineEngine
from PIL import Image

from ditod.pages.ocr_runner import run_ocr
from ditod.pages.page_inputs import collect_pages

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "configs" / "tiny" / "cascade_layoutlmv3_tiny.yaml"


def zero_page_pdf(path: Path) -> Path:
    import pypdfium2

    document = pypdfium2.PdfDocument.new()
    document.save(str(path))
    document.close()
    return path


def test_missing_weights_is_one_line_before_any_process_starts(tmp_path):
    command = [
        sys.executable,
        str(ROOT / "tools" / "train_net.py"),
        "--config-file",
        str(TINY),
        "--eval-only",
        "MODEL.WEIGHTS",
        str(tmp_path / "model_final.pth"),
        "OUTPUT_DIR",
        str(tmp_path / "out"),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 2
    assert result.stderr.startswith(
        f"error: MODEL.WEIGHTS: {tmp_path}/model_final.pth does not exist"
    )
    assert "Traceback" not in result.stderr and not (tmp_path / "out").exists()


def test_pdfs_that_yield_no_page_say_why_whatever_came_before(tmp_path):
    """PDFium's last error is process-wide: its text named the previous file's problem."""
    zero = zero_page_pdf(tmp_path / "empty.pdf")
    (tmp_path / "notes.pdf").write_bytes(b"plain text saved with a .pdf name\n")
    locked = tmp_path / "locked.pdf"  # a PDF whose trailer names an encryption dictionary
    locked.write_bytes(zero.read_bytes().replace(b"trailer\r\n<<", b"trailer\r\n<</Encrypt 9 0 R"))
    inputs = [zero, tmp_path / "notes.pdf", locked, zero]
    pages, failed = collect_pages(inputs, tmp_path / "render")
    assert pages == []
    reasons = [reason for _, reason in failed]
    assert reasons[0] == reasons[3] == f"{zero}: the PDF has no pages"
    assert reasons[1] == f"{tmp_path / 'notes.pdf'}: not a PDF (no %PDF header)"
    assert reasons[2].startswith(f"{locked}: encrypted (password-protected)")


@pytest.mark.parametrize(
    "size, reason", [((600, 1), "shorter side under 32 px"), ((2000, 60), "aspect ratio over 20:1")]
)
def test_degenerate_pages_are_skipped_before_ocr_and_counted(tmp_path, size, reason):
    Image.new("RGB", size, "white").save(tmp_path / "strip.png")
    Image.new("RGB", (300, 400), "white").save(tmp_path / "page.png")
    pages, failed = collect_pages([tmp_path / "strip.png", tmp_path / "page.png"], tmp_path / "r")
    assert [p.name for p in pages] == ["page"] and reason in failed[0][1]
    start = time.perf_counter()
    summary = run_ocr(
        [tmp_path / "strip.png", tmp_path / "page.png"],
        tmp_path,
        tmp_path / "OCR",
        OneLineEngine,
        page_timeout=None,
        delay=0.0,
    )
    assert time.perf_counter() - start < 5
    assert summary.done == 1 and len(summary.failed) == 1 and reason in summary.failed[0][1]
    listed = (tmp_path / "OCR" / "ocr_failed.txt").read_text()
    assert "strip.png\tdegenerate page" in listed
    assert not (tmp_path / "OCR" / "strip.json").exists()


@pytest.mark.slow
def test_a_page_past_the_time_limit_is_stopped_and_the_rest_finish(tmp_path):
    """The wide page stalls its engine for 120 s; at a 3 s limit its worker is killed, the page
    listed, and the other pages are OCR'd by a fresh worker."""
    for name in ("a", "b", "c"):
        Image.new("RGB", (300, 400), "white").save(tmp_path / f"{name}.png")
    Image.new("RGB", (400, 300), "white").save(tmp_path / "wide.png")
    images = sorted(tmp_path.glob("*.png"))
    start = time.perf_counter()
    summary = run_ocr(
        images, tmp_path, tmp_path / "OCR", OneLineEngine, workers=1, page_timeout=3, delay=120.0
    )
    assert time.perf_counter() - start < 100
    assert summary.done == 3
    assert summary.failed == [
        (str(tmp_path / "wide.png"), "OCR ran past the 3 s page time limit; its worker was stopped")
    ]
    assert sorted(p.name for p in (tmp_path / "OCR").glob("*.json")) == [
        "a.json",
        "b.json",
        "c.json",
    ]


def test_a_feature_whose_extra_is_missing_names_the_extra(monkeypatch, capsys):
    from ditod.cli import run_tool
    from ditod.deploy.onnx_predictor import OnnxLayoutPredictor
    from ditod.extras import MissingExtra
    from ditod.pages.ray_pool import connect_ray

    monkeypatch.setitem(sys.modules, "ray", None)  # as if not installed
    assert run_tool(connect_ray, "local", argv=[]) == 2
    assert (
        "error: running on a Ray cluster (--ray-address) needs ray, which is not installed: "
        "pip install 'layoutlmv3-ditod[ray]'" in capsys.readouterr().err
    )
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(MissingExtra, match=r"onnxruntime backend needs onnxruntime.*\[onnx\]"):
        OnnxLayoutPredictor("model.onnx", [])
