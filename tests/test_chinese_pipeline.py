"""Chinese end to end, as a CDLA user runs it: synthetic Chinese pages in CDLA's labelme layout
→ datasets/cdla_to_coco.py → tools/ocr_pages.py (the default engine's Chinese model) → an
XLM-R-style sentencepiece tokenizer under the CDLA config's rules → tools/train_net.py on the
Chinese demo config, the built-in cdla_train / cdla_val under DATASETS.ROOT → evaluation."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ditod.data import synthetic
from ditod.data.class_sets import CDLA_CLASSES
from ditod.fonts import cjk_fonts
from ditod.pages.ocr_json import ocr_folder_lines
from ditod.pages.text_match import CharacterMatch, character_match
from layoutlmv3.tokenization import (
    SPIECE_UNDERLINE,
    OCRPageTokenizer,
    train_sentencepiece_tokenizer,
)

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "demo" / "cascade_layoutlmv3_tiny_cdla.yaml"
PAGES = dict(pages=8, language="zh", seed=5, style="document", split_val=0.25)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not cjk_fonts(), reason="no CJK font (scripts/install.sh installs one)"),
]


def run(script, *args, timeout=600):
    command = [sys.executable, str(ROOT / script), *map(str, args)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout + result.stderr


@pytest.fixture(scope="module")
def cdla(tmp_path_factory):
    """``<data>/CDLA``: labelme pages, converted to COCO and OCR'd by the project's commands."""
    root = tmp_path_factory.mktemp("data") / "CDLA"
    synthetic.generate(root, layout="labelme", **PAGES)
    run("datasets/cdla_to_coco.py", "--cdla-root", root)
    for split in ("train", "val"):
        run("tools/ocr_pages.py", root / split, "--out", root / "OCR", "--workers", 1)
    return root


@pytest.fixture(scope="module")
def tokenizer(cdla):
    return train_sentencepiece_tokenizer(
        ocr_folder_lines(cdla / "OCR"), cdla.parent / "tokenizer", vocab_size=500
    )


def test_labelme_pages_convert_to_the_generators_boxes(cdla, tmp_path):
    coco_pages = synthetic.generate(tmp_path, **PAGES)  # the same pages, written as COCO
    for split in ("train", "val"):
        converted = json.loads((cdla / f"{split}.json").read_text())
        expected = json.loads(coco_pages[split].read_text())

        def boxes(coco):
            names = {c["id"]: c["name"] for c in coco["categories"]}
            files = {i["id"]: Path(i["file_name"]).stem for i in coco["images"]}
            return sorted(
                (files[a["image_id"]], names[a["category_id"]], *a["bbox"])
                for a in coco["annotations"]
            )

        assert [c["name"] for c in converted["categories"]] == list(CDLA_CLASSES)
        assert len(converted["images"]) == {"train": 6, "val": 2}[split]
        assert boxes(converted) == boxes(expected) and boxes(expected)  # exact, pixel for pixel
    shape_types = {
        shape["shape_type"]
        for path in (cdla / "train").glob("*.json")
        for shape in json.loads(path.read_text())["shapes"]
    }
    assert shape_types == {"polygon", "rectangle"}


def test_the_default_engine_reads_the_chinese_pages(cdla):
    total = CharacterMatch()
    for truth in sorted((cdla / "text").glob("*.json")):
        read = json.loads((cdla / "OCR" / truth.name).read_text())
        total = total + character_match(json.loads(truth.read_text()), read)
    assert total.truth > 5000
    assert total.recall >= 0.95 and total.precision >= 0.9, total


def test_cdla_rules_keep_three_tokens_a_line_without_the_lone_leading_space(cdla, tokenizer):
    cdla_rules = OCRPageTokenizer(tokenizer, tokens_per_segment=3, drop_leading_space=True)
    plain = OCRPageTokenizer(tokenizer)
    space_id = plain.tokenizer.convert_tokens_to_ids(SPIECE_UNDERLINE)
    lines = ocr_folder_lines(cdla / "OCR")
    pieces = [plain.tokenizer.tokenize(line) for line in lines]
    lone_space = [p for p in pieces if len(p) > 1 and p[0] == SPIECE_UNDERLINE]
    assert len(lone_space) > 0.1 * len(lines)  # XLM-R's pieces: a lone "▁" starts many lines
    for line, line_pieces in zip(lines, pieces, strict=True):
        ids = cdla_rules.segment_ids(line)
        assert 0 < len(ids) <= 3
        assert ids[0] != space_id or line_pieces == [SPIECE_UNDERLINE]


def test_training_on_the_cdla_settings_lowers_the_loss_and_evaluates_every_class(cdla, tokenizer):
    output = cdla.parent / "train"
    log = run(
        "tools/train_net.py",
        *("--config-file", CONFIG, "DATASETS.ROOT", cdla.parent),
        *("MODEL.LAYOUTLMV3.TEXT.TOKENIZER", tokenizer, "OUTPUT_DIR", output),
        *("SOLVER.MAX_ITER", 60, "SOLVER.CHECKPOINT_PERIOD", 1000),
    )
    records = [json.loads(line) for line in (output / "metrics.json").read_text().splitlines()]
    losses = {m["iteration"]: m["total_loss"] for m in records if "total_loss" in m}
    assert losses[59] < 0.8 * losses[19], losses
    assert "Per-category bbox AP" in log
    for name in CDLA_CLASSES:
        assert f"| {name}" in log
    assert 0 <= records[-1]["bbox/AP"] <= 100
