"""What the tool promises when data is messy or a run is killed: one test per case, through the
real entry points (registered dataset + dataset mapper, ``tools/train_net.py``, the OCR CLI, the
checkpointer). Each case ends in one clear error naming the file or key and the problem, or in a
logged, counted skip where a user wants the run to go on. README "What happens when…" lists
the same cases in the same order.
"""

import errno
import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import import_script
from detectron2.config import get_cfg
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.engine import default_argument_parser
from detectron2.modeling import build_model
from PIL import Image

from ditod import LayoutCheckpointer, add_layoutlmv3_config
from ditod.data import synthetic as synthetic_pages
from ditod.data.datasets import register_layout_dataset
from ditod.data.mapper import LayoutDatasetMapper
from ditod.pages import ocr_runner
from ditod.pages.engines import ENGINES
from ditod.pages.ocr_json import is_valid_ocr_json
from layoutlmv3 import IncompatibleWeights
from layoutlmv3.loading import UnsafeCheckpoint

ROOT = Path(__file__).resolve().parents[1]
TINY_CONFIG = ROOT / "configs" / "tiny" / "cascade_layoutlmv3_tiny.yaml"
train_net = import_script("tools/train_net.py")

PAGE = (200, 300)  # width, height of the test pages
BLOCK = [40, 60, 120, 80]  # x, y, w, h of the dark block on each page


def page_image(mode="RGB") -> Image.Image:
    """A white page with a black block at BLOCK, in PIL ``mode``."""
    array = np.full((PAGE[1], PAGE[0], 3), 255, np.uint8)
    x, y, w, h = BLOCK
    array[y : y + h, x : x + w] = 0
    return Image.fromarray(array).convert(mode)


def dataset(
    tmp_path, files: dict, ocr: dict | None = None, annotations=None, categories=None, images=None
) -> str:
    """Register a one-page COCO dataset; ``files`` maps file names to PIL images or bytes,
    ``ocr`` maps OCR JSON names to dicts or raw strings. Returns the dataset name."""
    (tmp_path / "images").mkdir(exist_ok=True)
    (tmp_path / "OCR").mkdir(exist_ok=True)
    for name, content in files.items():
        target = tmp_path / "images" / name
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            content.save(
                target, **({"exif": content.info["exif"]} if "exif" in content.info else {})
            )
    for name, content in (ocr or {}).items():
        text = content if isinstance(content, str) else json.dumps(content)
        (tmp_path / "OCR" / name).write_text(text)
    images = images or [
        {"id": 1, "file_name": next(iter(files)), "width": PAGE[0], "height": PAGE[1]}
    ]
    if annotations is None:
        annotations = [{"id": 1, "image_id": 1, "category_id": 1, "bbox": BLOCK, "iscrowd": 0}]
    categories = categories or [{"id": 1, "name": "block"}, {"id": 2, "name": "frame"}]
    coco = tmp_path / "coco.json"
    coco.write_text(
        json.dumps({"images": images, "annotations": annotations, "categories": categories})
    )
    name = f"reliability_{uuid.uuid4().hex[:8]}"
    register_layout_dataset(name, coco, tmp_path / "images", tmp_path / "OCR")
    return name


def tiny_cfg(tokenizer, **text):
    cfg = get_cfg()
    add_layoutlmv3_config(cfg)
    cfg.merge_from_file(str(TINY_CONFIG))
    cfg.MODEL.ROI_HEADS.NUM_CLASSES = 2
    cfg.MODEL.LAYOUTLMV3.TEXT.TOKENIZER = str(tokenizer)
    cfg.MODEL.LAYOUTLMV3.TEXT.MISSING_OCR = "error"
    for key, value in text.items():
        setattr(cfg.MODEL.LAYOUTLMV3.TEXT, key, value)
    return cfg


def map_first(name, tokenizer, **text):
    """The first page of dataset ``name`` through the training mapper of the tiny config."""
    mapper = LayoutDatasetMapper(tiny_cfg(tokenizer, **text), is_train=True)
    return mapper(DatasetCatalog.get(name)[0]), mapper


def block_is_dark(mapped) -> bool:
    """The (only) ground-truth box lies on the page's black block in the mapped image."""
    x0, y0, x1, y1 = mapped["instances"].gt_boxes.tensor[0].round().int().tolist()
    inside = mapped["image"][:, y0 + 2 : y1 - 2, x0 + 2 : x1 - 2].float().mean().item()
    return inside < 30 and mapped["image"].float().mean().item() > 100


OCR_PAGE = {"bbox": [[45, 65, 100, 12]], "words": ["block line"], "W": PAGE[0], "H": PAGE[1]}


# Inputs ----------------------------------------------------------------------------------------


def skipped_in_training_named_at_test_time(name, tokenizer, caplog, error, message):
    """Training skips the unreadable page (logged, counted; detectron2 draws another);
    evaluation and inference stop on it, naming the file."""
    with caplog.at_level(logging.WARNING):
        mapped, mapper = map_first(name, tokenizer)
    assert mapped is None and mapper.unreadable_pages == 1
    assert "skipped a training page (1 so far" in caplog.text
    assert re.search(message, caplog.text)
    test_mapper = LayoutDatasetMapper(tiny_cfg(tokenizer), is_train=False)
    with pytest.raises(error, match=message):
        test_mapper(DatasetCatalog.get(name)[0])


def test_image_missing_on_disk(tmp_path, bpe_folder, caplog):
    gone = [{"id": 1, "file_name": "gone.png", "width": 200, "height": 300}]
    name = dataset(tmp_path, {"page.png": page_image()}, {"gone.json": OCR_PAGE}, images=gone)
    skipped_in_training_named_at_test_time(
        name, bpe_folder, caplog, FileNotFoundError, r"gone.png: image file not found"
    )


def test_truncated_jpeg(tmp_path, bpe_folder, caplog):
    path = tmp_path / "whole.jpg"
    page_image().save(path, quality=90)
    data = path.read_bytes()
    name = dataset(tmp_path, {"page.jpg": data[: len(data) // 3]}, {"page.json": OCR_PAGE})
    skipped_in_training_named_at_test_time(
        name, bpe_folder, caplog, ValueError, r"page.jpg: cannot read image \(.*truncated"
    )


@pytest.mark.parametrize(
    "case, file_name, image",
    [
        ("03 CMYK JPEG", "page.jpg", page_image("CMYK")),
        (
            "04 16-bit PNG",
            "page.png",
            Image.fromarray((np.asarray(page_image("L"), np.uint16) * 257).astype(np.uint16)),
        ),
        ("05 RGBA PNG", "page.png", page_image("RGBA")),
        ("05 palette PNG", "page.png", page_image("P")),
    ],
)
def test_image_modes_reach_the_model_as_rgb(tmp_path, bpe_folder, case, file_name, image):
    name = dataset(tmp_path, {file_name: image}, {"page.json": OCR_PAGE})
    mapped, _ = map_first(name, bpe_folder)
    assert mapped["image"].shape[0] == 3 and mapped["image"].dtype == torch.uint8
    assert block_is_dark(mapped), case


def test_transparent_background_is_white_paper(tmp_path, bpe_folder):
    rgba = np.zeros((PAGE[1], PAGE[0], 4), np.uint8)  # fully transparent black ...
    x, y, w, h = BLOCK
    rgba[y : y + h, x : x + w, 3] = 255  # ... except an opaque black block
    name = dataset(tmp_path, {"page.png": Image.fromarray(rgba, "RGBA")}, {"page.json": OCR_PAGE})
    assert block_is_dark(map_first(name, bpe_folder)[0])


def test_exif_rotated_photo_boxes_match_what_the_detector_sees(tmp_path, bpe_folder):
    stored = page_image().transpose(Image.Transpose.ROTATE_90)  # the camera's raw pixels
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to view": upright = the page as annotated
    stored.info["exif"] = exif.tobytes()
    name = dataset(tmp_path, {"photo.jpg": stored}, {"photo.json": OCR_PAGE})
    mapped, _ = map_first(name, bpe_folder)
    height, width = mapped["image"].shape[1:]
    assert height > width  # upright, as the json's width/height say
    assert block_is_dark(mapped)


def test_huge_page_is_resized_not_loaded_at_full_size_into_the_model(tmp_path, bpe_folder):
    huge = Image.new("L", (10000, 8000), 255)
    huge.paste(0, (2000, 2400, 8000, 5600))
    name = dataset(
        tmp_path,
        {"huge.png": huge},
        {"huge.json": {**OCR_PAGE, "W": 200, "H": 300}},
        images=[{"id": 1, "file_name": "huge.png", "width": 10000, "height": 8000}],
        annotations=[
            {
                "id": 1,
                "image_id": 1,
                "category_id": 1,
                "bbox": [2000, 2400, 6000, 3200],
                "iscrowd": 0,
            }
        ],
    )
    mapped, _ = map_first(name, bpe_folder)
    assert tuple(mapped["image"].shape) == (3, 320, 400)  # INPUT.MIN/MAX_SIZE_TRAIN 320/448
    assert block_is_dark(mapped)
    assert mapped["bbox"].max() <= 1000


def test_missing_ocr_json_is_an_error_or_a_counted_image_only_page(tmp_path, bpe_folder, caplog):
    name = dataset(tmp_path, {"page.png": page_image()})
    with pytest.raises(FileNotFoundError, match=r"page.json: OCR JSON not found.*MISSING_OCR"):
        map_first(name, bpe_folder)
    with caplog.at_level(logging.WARNING):
        mapped, mapper = map_first(name, bpe_folder, MISSING_OCR="image_only")
    assert mapped["input_ids"].numel() == 0 and mapper.pages_without_ocr == 1
    assert "page without text (1 so far" in caplog.text and "page.json" in caplog.text


@pytest.mark.parametrize("content", ['{"bbox": [[1, 2, 3, 4]], "wor', "not json at all"])
def test_truncated_or_non_json_ocr(tmp_path, bpe_folder, content):
    name = dataset(tmp_path, {"page.png": page_image()}, {"page.json": content})
    with pytest.raises(ValueError, match=r"page.json: OCR JSON is not valid JSON"):
        map_first(name, bpe_folder)


def test_words_and_boxes_of_different_lengths(tmp_path, bpe_folder):
    bad = {**OCR_PAGE, "words": ["one", "two"]}
    name = dataset(tmp_path, {"page.png": page_image()}, {"page.json": bad})
    with pytest.raises(
        ValueError, match=r"page.json: OCR JSON 'words' and 'bbox' have different lengths"
    ):
        map_first(name, bpe_folder)


def test_ocr_boxes_outside_the_page_negative_or_nan(tmp_path, bpe_folder, caplog):
    ocr = {
        **OCR_PAGE,
        "bbox": [
            [45, 65, 100, 12],
            [150, 280, 500, 90],
            [60, 90, -40, 12],
            [10, float("nan"), 5, 5],
        ],
        "words": ["inside", "overflowing", "negative", "broken"],
    }
    name = dataset(tmp_path, {"page.png": page_image()}, {"page.json": ocr})
    with caplog.at_level(logging.WARNING):
        mapped, _ = map_first(name, bpe_folder)
    boxes = mapped["bbox"]
    assert boxes.min() >= 0 and boxes.max() <= 1000
    assert (boxes[:, 2] >= boxes[:, 0]).all() and (boxes[:, 3] >= boxes[:, 1]).all()
    # the negative-size and the NaN box are dropped and counted, the overflowing one clipped
    assert (
        "page.json: 2 of 4 OCR segments dropped (1 negative size, 1 malformed box)" in caplog.text
    )


def test_five_thousand_segments_are_capped(tmp_path, bpe_folder):
    ocr = {
        "bbox": [[i % 190, (i // 190) * 11 % 290, 10, 10] for i in range(5000)],
        "words": ["results"] * 5000,
        "W": PAGE[0],
        "H": PAGE[1],
    }
    name = dataset(tmp_path, {"page.png": page_image()}, {"page.json": ocr})
    mapped, _ = map_first(name, bpe_folder, MAX_TOKENS=128)
    assert mapped["input_ids"].numel() == 128 + 2  # the cap plus <s> and </s>


def test_zero_based_or_gapped_category_ids_and_cdla_background(tmp_path):
    categories = [
        {"id": 0, "name": "_background_"},
        {"id": 3, "name": "Text"},
        {"id": 7, "name": "Figure"},
    ]
    annotations = [{"id": 1, "image_id": 1, "category_id": 7, "bbox": BLOCK, "iscrowd": 0}]
    name = dataset(
        tmp_path, {"page.png": page_image()}, annotations=annotations, categories=categories
    )
    record = DatasetCatalog.get(name)[0]
    assert MetadataCatalog.get(name).thing_classes == ["Text", "Figure"]
    assert record["annotations"][0]["category_id"] == 1


def test_zero_area_and_outside_annotations_are_skipped_and_counted(tmp_path, caplog):
    annotations = [
        {"id": 1, "image_id": 1, "category_id": 1, "bbox": BLOCK, "iscrowd": 0},
        {"id": 2, "image_id": 1, "category_id": 1, "bbox": [10, 10, 0, 5], "iscrowd": 0},
        {"id": 3, "image_id": 1, "category_id": 1, "bbox": [500, 500, 20, 20], "iscrowd": 0},
    ]
    name = dataset(tmp_path, {"page.png": page_image()}, annotations=annotations)
    with caplog.at_level(logging.WARNING):
        record = DatasetCatalog.get(name)[0]
    assert len(record["annotations"]) == 1
    assert "coco.json: skipped annotations" in caplog.text
    assert "1 zero area" in caplog.text and "1 outside the image" in caplog.text


def test_duplicate_image_ids(tmp_path):
    images = [
        {"id": 1, "file_name": "page.png", "width": 200, "height": 300},
        {"id": 1, "file_name": "other.png", "width": 200, "height": 300},
    ]
    name = dataset(tmp_path, {"page.png": page_image()}, images=images)
    with pytest.raises(ValueError, match=r"coco.json: duplicate image ids \[1\]"):
        DatasetCatalog.get(name)


def test_unknown_config_key_and_misspelled_dataset(tmp_path):
    parser = default_argument_parser()
    args = parser.parse_args(
        [
            "--config-file",
            str(TINY_CONFIG),
            "MODEL.LAYOUTLMV3.FUSION.TYPO",
            "add",
            "OUTPUT_DIR",
            str(tmp_path),
        ]
    )
    with pytest.raises(
        KeyError,
        match=r"unknown config key MODEL.LAYOUTLMV3.FUSION.TYPO \(did "
        r"you mean MODEL.LAYOUTLMV3.FUSION.TYPE",
    ):
        train_net.setup(args)
    args = parser.parse_args(
        [
            "--config-file",
            str(TINY_CONFIG),
            "DATASETS.TRAIN",
            "('publaynet_trian',)",
            "OUTPUT_DIR",
            str(tmp_path),
        ]
    )
    with pytest.raises(
        ValueError,
        match=r"'publaynet_trian' is not registered.*Did you mean "
        r"publaynet_train",
    ):
        train_net.setup(args)


def test_weights_of_another_model_size(tmp_path, bpe_folder, caplog):
    small = tiny_cfg(bpe_folder)
    torch.manual_seed(0)
    LayoutCheckpointer(build_model(small), str(tmp_path)).save("tiny")
    other = tiny_cfg(bpe_folder)
    other.MODEL.FPN.OUT_CHANNELS = 32  # another detector: every FPN/head shape differs
    with caplog.at_level(logging.WARNING):
        LayoutCheckpointer(build_model(other)).load(str(tmp_path / "tiny.pth"))
    assert "Shape mismatch (" in caplog.text
    assert (
        "  backbone.fpn_lateral2.weight: checkpoint (64, 96, 1, 1) vs model (32, 96, 1, 1)"
        in caplog.text
    )
    mismatch = r"(?s)fpn_lateral2.weight: checkpoint \(64, 96, 1, 1\) vs model \(32, 96, 1, 1\)"
    with pytest.raises(IncompatibleWeights, match=mismatch + ".*STRICT_WEIGHTS is on"):
        LayoutCheckpointer(build_model(other), strict=True).load(str(tmp_path / "tiny.pth"))
    with pytest.raises(IncompatibleWeights, match=r"leaves \d+ model tensors at their random"):
        LayoutCheckpointer(build_model(other), complete=True).load(str(tmp_path / "tiny.pth"))


def test_tokenizer_missing_or_of_the_wrong_kind(tmp_path, bpe_folder):
    with pytest.raises(FileNotFoundError, match=r"tokenizer folder .*nowhere does not exist"):
        LayoutDatasetMapper(tiny_cfg(tmp_path / "nowhere"), is_train=True)
    config = tmp_path / "config.json"
    small_vocab = {
        "hidden_size": 96,
        "num_hidden_layers": 4,
        "num_attention_heads": 3,
        "intermediate_size": 192,
        "coordinate_size": 16,
        "shape_size": 16,
        "vocab_size": 100,
    }
    config.write_text(json.dumps(small_vocab))
    cfg = tiny_cfg(bpe_folder)
    cfg.MODEL.LAYOUTLMV3.CONFIG = str(config)
    with pytest.raises(
        ValueError,
        match=r"has 300 tokens but the model \(MODEL.LAYOUTLMV3.CONFIG "
        r".*config.json\) has a vocabulary of 100",
    ):
        LayoutDatasetMapper(cfg, is_train=True)


def test_batch_where_no_page_has_text(tmp_path, bpe_folder):
    empty = {"bbox": [], "words": [], "W": PAGE[0], "H": PAGE[1]}
    name = dataset(tmp_path, {"page.png": page_image()}, {"page.json": empty})
    cfg = tiny_cfg(bpe_folder)
    mapper = LayoutDatasetMapper(cfg, is_train=True)
    batch = [mapper(DatasetCatalog.get(name)[0]) for _ in range(2)]
    assert all(page["input_ids"].numel() == 0 for page in batch)
    torch.manual_seed(0)
    model = build_model(cfg).train()
    from detectron2.utils.events import EventStorage

    with EventStorage(0):
        losses = model(batch)
    total = sum(losses.values())
    assert torch.isfinite(total)
    total.backward()


# Faults ----------------------------------------------------------------------------------------


def run_train_net(*args, output, wait_for=None):
    """Run tools/train_net.py; with ``wait_for``, kill -9 it once that file exists."""
    command = [
        sys.executable,
        str(ROOT / "tools" / "train_net.py"),
        *map(str, args),
        "OUTPUT_DIR",
        str(output),
    ]
    if wait_for is None:
        result = subprocess.run(command, capture_output=True, text=True, timeout=900, cwd=ROOT)
        assert result.returncode == 0, result.stderr[-3000:]
        return result.stdout + result.stderr
    process = subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 900
    while not wait_for.exists():
        assert process.poll() is None, "train_net.py ended before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait()
    return ""


@pytest.mark.slow
def test_kill_9_then_resume_continues_exactly(tmp_path, block_pages, bpe_folder):
    coco_json, image_root, ocr_root = block_pages
    opts = [
        "--config-file",
        TINY_CONFIG,
        "DATASETS.EXTRA",
        json.dumps([["samples", str(coco_json), str(image_root), str(ocr_root)]]),
        "DATASETS.TRAIN",
        '("samples",)',
        "DATASETS.TEST",
        "()",
        "MODEL.LAYOUTLMV3.TEXT.TOKENIZER",
        bpe_folder,
        "MODEL.ROI_HEADS.NUM_CLASSES",
        5,
        "SOLVER.MAX_ITER",
        12,
        "SOLVER.CHECKPOINT_PERIOD",
        4,
        "SOLVER.WARMUP_ITERS",
        6,
        "SEED",
        3,
    ]
    run_train_net(*opts, output=tmp_path / "reference")
    killed = tmp_path / "killed"
    run_train_net(*opts, output=killed, wait_for=killed / "model_0000007.pth")
    assert (killed / "last_checkpoint").read_text() == "model_0000007.pth"
    assert not list(killed.glob("*.tmp")) and not list(killed.glob(".*.tmp"))
    log = run_train_net("--resume", *opts, output=killed)
    assert "Starting training from iteration 8" in log
    reference = torch.load(tmp_path / "reference" / "model_final.pth", weights_only=True)
    resumed = torch.load(killed / "model_final.pth", weights_only=True)
    assert resumed["iteration"] == reference["iteration"] == 11
    # the same weights, bit for bit, only if the data order, LR schedule, optimizer state and
    # the RNG state of proposal sampling all carried over
    for key, value in reference["model"].items():
        assert torch.equal(resumed["model"][key], value), key


@pytest.mark.slow
def test_kill_9_of_the_ocr_step_then_rerun_redoes_only_what_is_missing(tmp_path):
    synthetic_pages.generate(tmp_path, pages=4, seed=5, split_val=0.0, columns=(1,))
    out = tmp_path / "ocr"
    command = [
        sys.executable,
        str(ROOT / "tools" / "ocr_pages.py"),
        str(tmp_path / "images"),
        "--out",
        str(out),
        "--workers",
        "1",
    ]
    process = subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    while not list(out.glob("*.json")):
        assert process.poll() is None
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait()
    done = sorted(out.glob("*.json"))
    assert 1 <= len(done) < 4
    assert all(is_valid_ocr_json(p) for p in done)  # no half-written JSON
    assert not list(out.glob(".*.tmp"))
    stamps = {p.name: p.stat().st_mtime_ns for p in done}
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"{4 - len(done)} OCR'd, {len(done)} skipped" in result.stdout
    assert all(p.stat().st_mtime_ns == stamps[p.name] for p in done)


def test_nan_loss_stops_naming_the_iteration_and_the_term(tmp_path, bpe_folder, monkeypatch):
    from ditod import LayoutTrainer
    from ditod.modeling.rcnn import VLGeneralizedRCNN

    name = dataset(tmp_path, {"page.png": page_image()}, {"page.json": OCR_PAGE})
    cfg = tiny_cfg(bpe_folder)
    cfg.DATASETS.TRAIN, cfg.DATASETS.TEST = (name,), ()
    cfg.SOLVER.MAX_ITER, cfg.SOLVER.IMS_PER_BATCH, cfg.OUTPUT_DIR = 5, 1, str(tmp_path / "out")
    forward = VLGeneralizedRCNN.forward

    def nan_at_iteration_2(self, batched_inputs):
        losses = forward(self, batched_inputs)
        from detectron2.utils.events import get_event_storage

        if get_event_storage().iter == 2:
            losses["loss_box_reg_stage1"] = losses["loss_box_reg_stage1"] * float("nan")
        return losses

    monkeypatch.setattr(VLGeneralizedRCNN, "forward", nan_at_iteration_2)
    trainer = LayoutTrainer(cfg)
    with pytest.raises(
        FloatingPointError, match=r"loss 'loss_box_reg_stage1' is nan at iteration 2"
    ):
        trainer.train()


def test_disk_full_while_writing_a_checkpoint_or_ocr_json(tmp_path, bpe_folder, monkeypatch):
    checkpointer = LayoutCheckpointer(build_model(tiny_cfg(bpe_folder)), str(tmp_path / "ckpt"))
    checkpointer.save("model_final", iteration=3)
    saved = (tmp_path / "ckpt" / "model_final.pth").read_bytes()

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as patch:
        patch.setattr(torch, "save", lambda data, f: (f.write(b"partial"), full_disk()))
        with pytest.raises(OSError, match=r"No space left on device"):
            checkpointer.save("model_final", iteration=4)
    assert (tmp_path / "ckpt" / "model_final.pth").read_bytes() == saved
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == [
        "last_checkpoint",
        "model_final.pth",
    ]

    Image.new("RGB", (60, 40), "white").save(tmp_path / "page.png")
    previous = {"bbox": [[1, 1, 5, 5]], "words": ["kept"], "W": 60, "H": 40}
    ocr_json = tmp_path / "OCR" / "page.json"
    ocr_json.parent.mkdir()
    ocr_json.write_text(json.dumps(previous) + " ")  # valid but stale: the run redoes it ...

    class Engine:
        name, version = "fake", "1"

        def __init__(self, **_):
            pass

        def __call__(self, image):
            return []

    monkeypatch.setitem(ENGINES, "fake", Engine)
    monkeypatch.setattr(ocr_runner, "is_valid_ocr_json", lambda path, first_tokens=0: False)
    write_text = Path.write_text

    def partial_then_full(path, text, *args, **kwargs):
        if not (path.name.startswith(".page.json") and path.name.endswith(".tmp")):
            return write_text(path, text, *args, **kwargs)
        write_text(path, text[:5], *args, **kwargs)
        full_disk()

    monkeypatch.setattr(Path, "write_text", partial_then_full)  # ... on a full disk
    summary = ocr_runner.run_ocr(
        [tmp_path / "page.png"], tmp_path, tmp_path / "OCR", "fake", workers=1, page_timeout=None
    )  # the stub engine exists in this process only
    monkeypatch.undo()
    assert summary.done == 0 and "No space left on device" in summary.failed[0][1]
    assert json.loads(ocr_json.read_text()) == previous  # the previous file is intact
    assert sorted(os.listdir(ocr_json.parent)) == ["ocr_failed.txt", "page.json"]


def test_untrusted_checkpoint_with_code_is_refused(tmp_path, bpe_folder):
    evil = tmp_path / "evil.pth"
    torch.save({"model": {}, "payload": os.system}, evil)
    with pytest.raises(UnsafeCheckpoint, match=r"evil.pth: not a weights-only"):
        LayoutCheckpointer(build_model(tiny_cfg(bpe_folder))).load(str(evil))
