"""Inference: the CLI over images, folders and PDFs (JSON, overlays, COCO files, skipped pages),
OCR on the fly, and the metrics plots (export: test_export.py)."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import write_annotation_ocr, write_rectangle_coco
from detectron2.config import get_cfg
from detectron2.modeling import build_model
from PIL import Image
from pycocotools.coco import COCO

from ditod import LayoutCheckpointer, add_layoutlmv3_config
from ditod.deploy.inference import run_inference
from ditod.deploy.predictor import LayoutPredictor
from ditod.pages.engines import ENGINES
from ditod.pages.page_inputs import collect_pages
from ditod.plots import write_plots

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "tiny" / "cascade_layoutlmv3_tiny.yaml"
CLASSES = ["block", "frame"]


def tiny_cfg(tokenizer=None, weights=""):
    cfg = get_cfg()
    add_layoutlmv3_config(cfg)
    cfg.merge_from_file(str(CONFIG))
    cfg.MODEL.ROI_HEADS.NUM_CLASSES = len(CLASSES)
    cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST = 0.0
    cfg.TEST.PRECISION = "fp32"  # compared with other backends and processes to 1e-4
    cfg.MODEL.WEIGHTS = str(weights)
    if tokenizer is None:
        cfg.MODEL.LAYOUTLMV3.IMAGE_ONLY = True
        cfg.MODEL.LAYOUTLMV3.FUSION.TYPE = ""
    else:
        cfg.MODEL.LAYOUTLMV3.TEXT.TOKENIZER = str(tokenizer)
    return cfg


@pytest.fixture(scope="module")
def text_model(tmp_path_factory, bpe_folder):
    """A tiny random text-fused detector saved as the trainer saves one (with class names)."""
    folder = tmp_path_factory.mktemp("weights")
    torch.manual_seed(0)
    model = build_model(tiny_cfg(bpe_folder))
    LayoutCheckpointer(model, str(folder), class_names=CLASSES).save("model_final")
    return folder / "model_final.pth", bpe_folder


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    """4 rectangle pages with OCR JSON, a 2-page PDF (72 dpi) and a truncated PNG."""
    root = tmp_path_factory.mktemp("pages")
    coco_json = write_rectangle_coco(root, num_images=4)
    write_annotation_ocr(coco_json, root / "OCR", line_height=12)
    first, second = (Image.open(p).convert("RGB") for p in sorted((root / "images").iterdir())[:2])
    first.save(root / "doc.pdf", save_all=True, append_images=[second], resolution=72)
    data = (root / "images" / "page_001.png").read_bytes()
    (root / "broken.png").write_bytes(data[: len(data) // 3])
    return root


def infer(*args):
    command = [sys.executable, str(ROOT / "tools" / "infer.py"), *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=ROOT)


@pytest.mark.slow
def test_infer_cli_writes_json_overlays_and_coco_and_skips_a_broken_page(
    text_model, pages, tmp_path
):
    weights, tokenizer = text_model
    out = tmp_path / "out"
    result = infer(
        "--config-file",
        CONFIG,
        "--input",
        pages / "images",
        pages / "doc.pdf",
        pages / "broken.png",
        "--output",
        out,
        "--ocr-root",
        pages / "OCR",
        "--dpi",
        72,
        "--batch-size",
        2,
        "--score-threshold",
        0.0,
        "--precision",  # not auto: its speed probe may choose otherwise in the rerun below
        "fp32",
        "--markdown",
        "MODEL.WEIGHTS",
        weights,
        "MODEL.LAYOUTLMV3.TEXT.TOKENIZER",
        tokenizer,
        "MODEL.ROI_HEADS.NUM_CLASSES",
        2,
    )
    assert result.returncode == 1, result.stderr[-3000:]
    assert "6 pages done, 0 done by an earlier run, 1 skipped" in result.stdout
    failed = (out / "failed.txt").read_text()
    assert "broken.png" in failed and "truncated" in failed.lower()

    names = ["page_001", "page_002", "page_003", "page_004", "doc/page-0001", "doc/page-0002"]
    total = 0
    for name in names:
        page = json.loads((out / "predictions" / f"{name}.json").read_text())
        assert (page["width"], page["height"]) == (160, 128), name
        assert page["detections"], name
        for detection in page["detections"]:
            assert detection["category"] == CLASSES[detection["category_id"]]
            x0, y0, x1, y1 = detection["bbox"]
            assert 0 <= x0 <= x1 <= 160 and 0 <= y0 <= y1 <= 128
        scores = [d["score"] for d in page["detections"]]
        assert scores == sorted(scores, reverse=True)
        # the same boxes as regions, in reading order, with the OCR lines inside them (the PDF's
        # pages have no OCR JSON under --ocr-root: no text)
        key = lambda d: (d["score"], d["bbox"])  # noqa: E731
        assert sorted(map(key, page["regions"])) == sorted(map(key, page["detections"]))
        assert all(r["role"] == "text" for r in page["regions"])
        with_text = [r for r in page["regions"] if "text" in r]
        assert len(with_text) == (0 if name.startswith("doc/") else len(page["regions"]))
        markdown = (out / "markdown" / f"{name}.md").read_text()
        assert all(r["text"] in markdown for r in with_text)
        total += len(page["detections"])
        overlay = np.asarray(Image.open(out / "overlays" / f"{name}.png"))
        assert overlay.shape == (128, 160, 3), name
    # the PDF's pages were rendered at the page size and drawn on
    rendered = np.asarray(Image.open(out / "pages" / "doc" / "page-0001.png"))
    original = np.asarray(Image.open(pages / "images" / "page_001.png").convert("RGB"))
    assert np.abs(rendered.astype(int) - original).mean() < 8
    assert (
        np.abs(
            np.asarray(Image.open(out / "overlays" / "doc/page-0001.png")).astype(int) - rendered
        ).mean()
        > 1
    )

    coco = COCO(str(out / "coco_pages.json"))
    results = coco.loadRes(str(out / "coco_instances_results.json"))
    assert len(results.getImgIds()) == 6 and len(results.getAnnIds()) == total
    assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == CLASSES

    written = (out / "coco_instances_results.json").read_bytes()
    (out / "overlays" / "page_003.png").unlink()  # as if the run had died on that page
    again = infer(*result.args[2:])
    assert "1 pages done, 5 done by an earlier run, 1 skipped" in again.stdout, again.stderr
    assert (out / "coco_instances_results.json").read_bytes() == written


class FakeEngine:
    """An OCR engine that reads the same two lines on every page."""

    name, version = "fake", "1"

    def __init__(self, **_):
        pass

    def __call__(self, image):
        return [
            ([10, 10, 60, 12], "block line", 0.99, [[10, 10], [70, 10], [70, 22], [10, 22]]),
            ([10, 70, 60, 12], "frame line", 0.98, [[10, 70], [70, 70], [70, 82], [10, 82]]),
        ]


def test_text_model_ocrs_pages_on_the_fly(text_model, pages, tmp_path, monkeypatch):
    monkeypatch.setitem(ENGINES, "fake", FakeEngine)
    weights, tokenizer = text_model
    predictor = LayoutPredictor(tiny_cfg(tokenizer, weights))
    assert predictor.class_names == CLASSES and predictor.uses_text
    found, failed = collect_pages([pages / "images"], tmp_path / "rendered")
    assert not failed and len(found) == 4
    # the stub engine exists in this process only: no worker processes (no page time limit)
    summary = run_inference(
        predictor, found[:2], tmp_path, ocr_engine="fake", ocr_workers=1, ocr_page_timeout=None
    )
    assert summary.done == 2 and not summary.failed
    written = json.loads((tmp_path / "ocr" / "page_001.json").read_text())
    assert written["words"] == ["block line", "frame line"]
    mapped = predictor.map_page(found[0].image, tmp_path / "ocr" / "page_001.json")
    expected = predictor.mapper.tokenizer(written)  # the page's text as training encodes it
    assert torch.equal(mapped["input_ids"], expected.input_ids)
    assert mapped["input_ids"].numel() > 2


def test_collect_pages_reports_what_it_cannot_use(pages, tmp_path):
    (tmp_path / "notes.txt").write_text("not a page")
    (tmp_path / "bad.pdf").write_bytes(b"%PDF-1.4 this is not really a pdf")
    found, failed = collect_pages(
        [pages / "doc.pdf", tmp_path / "notes.txt", tmp_path / "bad.pdf", tmp_path / "missing"],
        tmp_path / "rendered",
        dpi=144,
    )
    assert [p.name for p in found] == ["doc/page-0001", "doc/page-0002"]
    assert Image.open(found[0].image).size == (320, 256)  # 144 dpi = twice the 72-dpi size
    reasons = dict(failed)
    assert "unsupported file type" in reasons[str(tmp_path / "notes.txt")]
    assert reasons[str(tmp_path / "bad.pdf")].endswith(
        "bad.pdf: damaged: PDFium could not parse it"
    )
    assert "no such file" in reasons[str(tmp_path / "missing")]


def test_plots_from_metrics(tmp_path):
    lines = [
        {"iteration": i, "total_loss": 3 - i / 50, "loss_cls": 1 - i / 200, "lr": 1e-3}
        for i in range(19, 100, 20)
    ]
    lines.append(
        {
            "iteration": 99,
            "bbox/AP": 41.5,
            "bbox/AP50": 70.0,
            "bbox/AP75": 40.0,
            "bbox/AP-block": 55.0,
            "bbox/AP-frame": 28.0,
        }
    )
    metrics = tmp_path / "metrics.json"
    metrics.write_text("\n".join(json.dumps(x) for x in lines) + '\n{"iteration": 1')  # killed
    written = write_plots(metrics, tmp_path / "plots")
    assert [p.name for p in written] == ["loss.png", "lr.png", "ap.png", "ap_per_class.png"]
    for path in written:
        assert Image.open(path).size[0] > 300
    command = [sys.executable, str(ROOT / "tools" / "plot_metrics.py"), str(tmp_path / "nope.json")]
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 2 and "nope.json: no such file" in result.stderr
