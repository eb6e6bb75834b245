"""tools/check_dataset.py: every problem it promises to find, and its exit status."""

import json
import subprocess
import sys
from pathlib import Path

from PIL import Image

from ditod.data.dataset_check import check_dataset

CLI = Path(__file__).resolve().parents[1] / "tools" / "check_dataset.py"
TINY = Path(__file__).resolve().parents[1] / "configs" / "tiny" / "cascade_layoutlmv3_tiny.yaml"


def build(tmp_path, categories=None, annotations=None, images=None, ocr=True):
    (tmp_path / "images").mkdir(parents=True, exist_ok=True)
    (tmp_path / "OCR").mkdir(exist_ok=True)
    Image.new("RGB", (100, 80), "white").save(tmp_path / "images" / "a.png")
    Image.new("RGB", (100, 80), "white").save(tmp_path / "images" / "b.png")
    if ocr:
        page = {"words": ["x"], "bbox": [[1, 1, 5, 5]], "W": 100, "H": 80}
        (tmp_path / "OCR" / "a.json").write_text(json.dumps(page))
    coco = {
        "images": images or [{"id": 1, "file_name": "a.png", "width": 100, "height": 80}],
        "annotations": annotations
        or [
            {
                "id": 1,
                "image_id": 1,
                "category_id": 1,
                "bbox": [1, 1, 10, 10],
                "area": 100,
                "iscrowd": 0,
            }
        ],
        "categories": categories or [{"id": 1, "name": "text"}, {"id": 2, "name": "title"}],
    }
    path = tmp_path / "ann.json"
    path.write_text(json.dumps(coco))
    return path


def report_of(tmp_path, **kwargs):
    return check_dataset(build(tmp_path, **kwargs), tmp_path / "images")


def test_clean_dataset_has_no_findings_and_counts_classes(tmp_path):
    report = report_of(tmp_path)
    assert report.errors == [] and report.warnings == []
    assert report.class_counts == {"text": 1, "title": 0}


def test_errors(tmp_path):
    images = [
        {"id": 1, "file_name": "a.png", "width": 100, "height": 80},
        {"id": 1, "file_name": "b.png", "width": 90, "height": 80},
        {"id": 3, "file_name": "gone.png", "width": 10, "height": 10},
    ]
    anns = [{"id": 1, "image_id": 1, "category_id": 9, "bbox": [1, 1, 5, 5]}]
    errors = "\n".join(report_of(tmp_path, images=images, annotations=anns).errors)
    assert "duplicate image ids [1]" in errors
    assert "gone.png: image missing on disk" in errors
    assert "b.png: json says 90x80, the file is 100x80" in errors
    assert "annotation 1 has unknown category_id 9" in errors


def test_warnings(tmp_path):
    categories = [{"id": 0, "name": "_background_"}, {"id": 2, "name": "text"}]
    anns = [
        {"id": 1, "image_id": 1, "category_id": 2, "bbox": [1, 1, 0, 5]},
        {"id": 2, "image_id": 1, "category_id": 2, "bbox": [90, 70, 30, 30]},
    ]
    images = [
        {"id": 1, "file_name": "a.png", "width": 100, "height": 80},
        {"id": 2, "file_name": "b.png", "width": 100, "height": 80},
    ]
    build(tmp_path, categories=categories, annotations=anns, images=images)
    (tmp_path / "OCR" / "a.json").write_text(
        json.dumps({"words": ["x"], "bbox": [[95, 70, 40, 40]], "W": 100, "H": 80})
    )
    report = check_dataset(tmp_path / "ann.json", tmp_path / "images")
    warnings = "\n".join(report.warnings)
    assert report.errors == []
    assert "dropped category 0 '_background_' (a background class without annotations)" in warnings
    assert "category ids [2] are 0-based or not contiguous" in warnings
    assert "skipped annotations: 1 zero area" in warnings
    assert "1 annotations partly outside their image (clipped)" in warnings
    assert "1 pages without OCR JSON" in warnings and "read as image-only pages" in warnings
    assert "a.json: 1 OCR boxes run over the edge of the 100x80 page (clipped)" in warnings


def test_exit_status(tmp_path):
    clean = build(tmp_path / "clean")
    ok = subprocess.run(
        [sys.executable, str(CLI), str(clean), str(tmp_path / "clean" / "images")],
        capture_output=True,
        text=True,
    )
    assert ok.returncode == 0 and "0 errors, 0 warnings" in ok.stdout and "text" in ok.stdout
    broken = build(
        tmp_path / "broken", images=[{"id": 1, "file_name": "zz.png", "width": 1, "height": 1}]
    )
    bad = subprocess.run(
        [sys.executable, str(CLI), str(broken), str(tmp_path / "broken/images")],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 1 and "zz.png: image missing on disk" in bad.stdout


def test_ocr_boxes_in_corner_format_are_named_as_such(tmp_path):
    build(tmp_path)
    lines = {
        "words": ["a", "b", "c"],
        "bbox": [[60, 10, 90, 20], [50, 30, 95, 40], [1, 1, 4, 4]],
        "W": 100,
        "H": 80,
    }
    (tmp_path / "OCR" / "a.json").write_text(json.dumps(lines))
    errors = "\n".join(check_dataset(tmp_path / "ann.json", tmp_path / "images").errors)
    assert (
        "a.json: 2 OCR boxes look like corners [x0, y0, x1, y1] (e.g. [60, 10, 90, 20])" in errors
    )
    assert "the OCR JSON format is [x, y, w, h]" in errors


def config_check(tmp_path, tokenizer, *opts):
    """tools/check_dataset.py --config-file on a text-fused tiny config and one EXTRA dataset
    whose page b.png has no OCR JSON."""
    images = [
        {"id": 1, "file_name": "a.png", "width": 100, "height": 80},
        {"id": 2, "file_name": "b.png", "width": 100, "height": 80},
    ]
    json_file = build(tmp_path, images=images)
    name = f"check_{tmp_path.name}"
    extra = json.dumps([[name, str(json_file), str(tmp_path / "images")]])
    command = [
        sys.executable,
        str(CLI),
        "--config-file",
        str(TINY),
        "--dataset",
        name,
        "DATASETS.EXTRA",
        extra,
        "MODEL.LAYOUTLMV3.TEXT.TOKENIZER",
        str(tokenizer),
        "MODEL.ROI_HEADS.NUM_CLASSES",
        "2",
        *opts,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=300)


def test_config_check_reports_what_training_would_do(tmp_path, bpe_folder):
    strict = config_check(tmp_path / "a", bpe_folder, "MODEL.LAYOUTLMV3.TEXT.MISSING_OCR", "error")
    assert strict.returncode == 1, strict.stdout + strict.stderr
    assert (
        "1 pages without OCR JSON" in strict.stdout
        and "training stops at the first" in strict.stdout
    )
    lenient = config_check(
        tmp_path / "b", bpe_folder, "MODEL.LAYOUTLMV3.TEXT.MISSING_OCR", "image_only"
    )
    assert lenient.returncode == 0, lenient.stdout + lenient.stderr
    assert "1 pages without OCR JSON" in lenient.stdout and "read as image-only" in lenient.stdout


def test_config_check_reports_class_sets_and_tokenizer(tmp_path, bpe_folder):
    result = config_check(
        tmp_path,
        bpe_folder,
        "MODEL.LAYOUTLMV3.TEXT.MISSING_OCR",
        "image_only",
        "MODEL.ROI_HEADS.NUM_CLASSES",
        "10",
        "MODEL.LAYOUTLMV3.SIZE",
        "tiny",
        "MODEL.LAYOUTLMV3.CONFIG",
        "",
    )
    assert result.returncode == 1
    assert "has 2 classes ['text', 'title'], but MODEL.ROI_HEADS.NUM_CLASSES is 10" in result.stdout


def test_config_check_refuses_a_tokenizer_larger_than_the_model(tmp_path, bpe_folder):
    small = tmp_path / "config.json"
    small.write_text(
        json.dumps(
            {
                "hidden_size": 96,
                "num_hidden_layers": 4,
                "num_attention_heads": 3,
                "intermediate_size": 192,
                "coordinate_size": 16,
                "shape_size": 16,
                "vocab_size": 100,
            }
        )
    )
    result = config_check(
        tmp_path,
        bpe_folder,
        "MODEL.LAYOUTLMV3.TEXT.MISSING_OCR",
        "image_only",
        "MODEL.LAYOUTLMV3.CONFIG",
        str(small),
    )
    assert result.returncode == 1
    assert "tokenizer" in result.stdout and "100" in result.stdout
