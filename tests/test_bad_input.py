"""Bad and unusual input costs one page, never the run: oversized and huge pages, multi-page
TIFFs, malformed OCR boxes, file names that are not UTF-8, outputs that cannot be written,
Ctrl-C, and COCO files the checker and the loader must read alike."""

import json
import math
import os
import signal
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from detectron2.data import DatasetCatalog
from detectron2.modeling import build_model
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from test_inference import CLASSES, CONFIG, tiny_cfg

from ditod import LayoutCheckpointer
from ditod.data.annotation_rules import read_coco
from ditod.data.dataset_check import check_dataset
from ditod.data.datasets import check_mask_annotations, register_layout_dataset
from ditod.data.mapper import LayoutDatasetMapper
from ditod.deploy.regions import page_regions
from ditod.pages.image_io import (
    MAX_PAGE_MEGAPIXELS_ENV,
    PageTooLarge,
    degenerate_page,
    page_size,
    read_page_image,
)
from ditod.pages.ocr_json import read_ocr_json
from ditod.pages.page_inputs import collect_pages
from layoutlmv3 import OCRPageTokenizer

ROOT = Path(__file__).resolve().parents[1]


def header_only_png(path: Path, width: int, height: int) -> Path:
    """A PNG whose header declares ``width`` × ``height`` (no pixels: a decompression bomb's
    size at no cost)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b""))
        + chunk(b"IEND", b"")
    )
    return path


def text_page(size=(1200, 1600), seed=0) -> Image.Image:
    """A page of dark text-like bars on white."""
    rng = np.random.default_rng(seed)
    width, height = size
    page = np.full((height, width, 3), 255, np.uint8)
    for y in range(height // 20, height - height // 20, height // 40):
        x0 = int(rng.integers(width // 20, width // 8))
        x1 = int(rng.integers(width // 2, width - width // 20))
        page[y : y + height // 80, x0:x1] = rng.integers(0, 90)
    return Image.fromarray(page)


# --- pages over the size limit -------------------------------------------------------------


def test_a_page_over_pillows_bomb_limit_is_named_with_its_size_and_the_option(tmp_path):
    huge = header_only_png(tmp_path / "scan.png", 20000, 10000)  # 200 MP > Pillow's 179 MP
    with pytest.raises(PageTooLarge) as error:
        read_page_image(huge)
    message = str(error.value)
    assert str(huge) in message and "20000x10000 px, 200 megapixels" in message
    assert "over the limit of 179 megapixels" in message and "--max-megapixels" in message
    assert "200 megapixels" in degenerate_page(huge)
    text_page((400, 500)).save(tmp_path / "good.png")
    pages, failures = collect_pages([tmp_path], tmp_path / "render")
    assert [page.name for page in pages] == ["good"]
    assert failures == [(str(huge), message.removeprefix(f"{huge}: "))]


def test_the_size_limit_is_raised_for_this_process_and_its_workers(tmp_path, monkeypatch):
    huge = header_only_png(tmp_path / "scan.png", 20000, 10000)
    monkeypatch.setenv(MAX_PAGE_MEGAPIXELS_ENV, "250")
    assert page_size(huge) == (20000, 10000) and degenerate_page(huge) is None
    monkeypatch.setenv(MAX_PAGE_MEGAPIXELS_ENV, "0.1")
    text_page((400, 500)).save(tmp_path / "small.png")
    with pytest.raises(PageTooLarge, match=r"small.png: page is 400x500 px.*limit of 0"):
        read_page_image(tmp_path / "small.png")


# --- memory follows what the reader needs --------------------------------------------------


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_a_reduced_read_gives_the_detector_the_same_page(tmp_path, suffix):
    path = tmp_path / f"page{suffix}"
    text_page((2400, 3200)).save(path, quality=95)
    # the detector resizes to 600: the mapper asks for twice that
    full, reduced = read_page_image(path), read_page_image(path, min_side=1200)
    assert full.shape == (3200, 2400, 3) and reduced.shape == (1600, 1200, 3)
    assert abs(reduced.shape[0] / reduced.shape[1] - 4 / 3) < 0.01

    def as_detector_sees(array):  # ResizeShortestEdge to 600 (PIL bilinear, as detectron2)
        return np.asarray(Image.fromarray(array).resize((600, 800), Image.Resampling.BILINEAR))

    difference = np.abs(as_detector_sees(full).astype(int) - as_detector_sees(reduced))
    assert difference.mean() < 1.5
    display = read_page_image(path, max_side=1000)
    assert display.shape == (1000, 750, 3)


def test_a_reduced_read_keeps_the_exif_orientation(tmp_path):
    page = np.full((1600, 4000, 3), 255, np.uint8)
    page[:, :400] = 0  # ink on the left edge of the stored pixels
    image = Image.fromarray(page)
    exif = image.getexif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    image.save(tmp_path / "photo.jpg", exif=exif, quality=95)
    assert page_size(tmp_path / "photo.jpg") == (1600, 4000)
    for upright in (
        read_page_image(tmp_path / "photo.jpg", min_side=400),
        read_page_image(tmp_path / "photo.jpg", max_side=1000),
    ):
        height, width = upright.shape[:2]
        assert height > width and upright[: height // 10].mean() < 60  # the ink is on top
        assert upright[height // 5 :].mean() > 200


def test_the_test_time_mapper_reads_big_pages_reduced_in_full_page_coordinates(tmp_path):
    cfg = tiny_cfg()
    page = text_page((600, 800))
    page.save(tmp_path / "small.png")
    page.resize((2400, 3200), Image.Resampling.NEAREST).save(tmp_path / "big.png")
    mapper = LayoutDatasetMapper(cfg, is_train=False)
    small = mapper({"file_name": str(tmp_path / "small.png")})
    big = mapper({"file_name": str(tmp_path / "big.png")})
    assert (big["width"], big["height"]) == (2400, 3200)  # detections come back at full size
    assert big["image"].shape == small["image"].shape  # the detector sees the same page
    assert (big["image"].float() - small["image"].float()).abs().mean() < 2.0
    with pytest.raises(ValueError, match="Mismatched image shape"):  # a wrong size is caught
        mapper({"file_name": str(tmp_path / "big.png"), "width": 600, "height": 800})


# --- malformed OCR boxes -------------------------------------------------------------------


def test_malformed_ocr_boxes_are_dropped_and_counted_by_reason(bpe_folder, caplog):
    page = {
        "W": 200,
        "H": 100,
        "words": ["null", "text", "nan", "negative", "outside", "bool", "good", "over", 7],
        "bbox": [
            None,
            ["a", 1, 2, 3],
            [float("nan"), 1, 2, 3],
            [50, 50, -10, 5],
            [300, 10, 20, 20],
            [True, 1, 2, 3],
            [10, 10, 30, 10],
            [190, 90, 40, 40],
            [10, 40, 20, 10],
        ],
    }
    tokenizer = OCRPageTokenizer(bpe_folder, max_tokens=64)
    with caplog.at_level("WARNING"):
        segments = tokenizer.tokenize_segments(page, source="p.json")
    assert dict(segments.dropped) == {
        "malformed box": 4,
        "negative size": 1,
        "outside the page": 1,
        "text not a string": 1,
    }
    assert segments.boxes.tolist() == [[10, 10, 40, 20], [190, 90, 200, 100]]  # the last clipped
    assert "p.json: 7 of 9 OCR segments dropped (4 malformed box" in caplog.text
    encoded = tokenizer(page, source="p.json")
    assert encoded.dropped_segments == 7 and encoded.input_ids.numel() > 2
    detections = [{"category": "text", "category_id": 0, "score": 0.9, "bbox": [0, 0, 100, 50]}]
    (region,) = page_regions(detections, 200, page)
    assert region["text"] == "good"


def test_a_page_cut_at_the_token_cap_says_how_much_was_kept(bpe_folder):
    page = {"W": 100, "H": 100, "words": ["results"] * 50, "bbox": [[1, 1, 5, 5]] * 50}
    tokenizer = OCRPageTokenizer(bpe_folder, max_tokens=16)
    total = tokenizer.tokenize_segments(page).tokens
    encoded = tokenizer(page)
    assert total >= 50 and encoded.input_ids.numel() == 16 + 2
    assert encoded.tokens_cut == total - 16


# --- one rule set for data: the checker and the loader -------------------------------------


def coco_with(tmp_path, annotations, images=None) -> Path:
    root = tmp_path / "data"
    (root / "images").mkdir(parents=True, exist_ok=True)
    text_page((160, 128)).save(root / "images" / "a.png")
    images = images or [{"id": 1, "file_name": "a.png", "width": 160, "height": 128}]
    coco = {"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "t"}]}
    (root / "ann.json").write_text(json.dumps(coco))
    return root


def box(i, bbox=(10, 10, 50, 30), image_id=1, **extra):
    return {"id": i, "image_id": image_id, "category_id": 1, "bbox": list(bbox), **extra}


def loaded_or_error(root: Path, name: str) -> str:
    register_layout_dataset(name, root / "ann.json", root / "images")
    try:
        DatasetCatalog.get(name)
    except ValueError as error:
        return str(error)
    finally:
        DatasetCatalog.remove(name)
    return ""


def test_one_image_under_two_ids_is_an_error_for_checker_and_loader(tmp_path):
    images = [
        {"id": 1, "file_name": "a.png", "width": 160, "height": 128},
        {"id": 2, "file_name": "a.png", "width": 160, "height": 128},
    ]
    root = coco_with(tmp_path, [box(1), box(2, image_id=2)], images)
    report = check_dataset(root / "ann.json", root / "images", check_ocr=False)
    said = "1 image files listed under more than one image id (e.g. a.png)"
    assert any(said in error for error in report.errors)
    assert said in loaded_or_error(root, "twice")


def test_a_negative_size_box_is_named_as_such(tmp_path):
    root = coco_with(tmp_path, [box(1), box(2, (50, 50, -20, 10)), box(3, (5, 5, 0, 9))])
    report = check_dataset(root / "ann.json", root / "images", check_ocr=False)
    assert any("1 negative size, 1 zero area" in w for w in report.warnings), report.warnings


@pytest.mark.parametrize(
    ("segmentation", "named"),
    [
        ("polygon", "a str, not polygons or an RLE"),
        ([[10, 10, 50, 10, 50]], "an odd-length polygon (5 numbers)"),
        ({"size": [128, 160]}, "an RLE without 'counts'"),
        ([[10, 10, 50, 10]], "a polygon of 2 points"),
    ],
)
def test_malformed_segmentations_are_errors_only_for_a_mask_model(tmp_path, segmentation, named):
    root = coco_with(tmp_path, [box(1, segmentation=segmentation)])
    with_masks = check_dataset(root / "ann.json", root / "images", check_ocr=False, mask_on=True)
    assert any(f"annotation 1 has {named}" in e for e in with_masks.errors), with_masks.errors
    boxes_only = check_dataset(root / "ann.json", root / "images", check_ocr=False)
    assert not boxes_only.errors and any("MODEL.MASK_ON False" in w for w in boxes_only.warnings)


def test_mask_on_with_box_only_data_is_one_error_before_training(tmp_path):
    root = coco_with(tmp_path, [box(1), box(2, (60, 60, 40, 40))])
    report = check_dataset(root / "ann.json", root / "images", check_ocr=False, mask_on=True)
    assert any("MODEL.MASK_ON is True but 2 of 2 annotations have no segmentation" in e
               for e in report.errors)  # fmt: skip
    cfg = tiny_cfg()
    cfg.MODEL.MASK_ON = True
    register_layout_dataset("boxes_only", root / "ann.json", root / "images")
    try:
        DatasetCatalog.get("boxes_only")
        with pytest.raises(ValueError, match=r"MODEL.MASK_ON is True but dataset 'boxes_only'"):
            check_mask_annotations(cfg, ["boxes_only"])
        cfg.MODEL.MASK_ON = False
        check_mask_annotations(cfg, ["boxes_only"])
    finally:
        DatasetCatalog.remove("boxes_only")


def test_valid_polygons_and_rle_are_kept_for_the_mask_head(tmp_path):
    rle = {"size": [128, 160], "counts": "abc"}
    coco = {
        "images": [{"id": 1, "file_name": "a.png", "width": 160, "height": 128}],
        "annotations": [box(1, segmentation=[[10, 10, 60, 10, 60, 40]]), box(2, segmentation=rle)],
        "categories": [{"id": 1, "name": "t"}],
    }
    read = read_coco(coco, "ann.json", mask_on=True)
    assert not read.errors and read.without_mask == 0 and read.rle_masks == 1
    assert [a["segmentation"] for a in read.annotations[1]] == [
        [[10.0, 10.0, 60.0, 10.0, 60.0, 40.0]],
        rle,
    ]


# --- the command-line tools ----------------------------------------------------------------


@pytest.fixture(scope="module")
def image_model(tmp_path_factory):
    """A tiny random image-only detector saved as the trainer saves one."""
    folder = tmp_path_factory.mktemp("image_weights")
    torch.manual_seed(0)
    model = build_model(tiny_cfg())
    LayoutCheckpointer(model, str(folder), class_names=CLASSES).save("model_final")
    return folder / "model_final.pth"


def infer_command(weights, inputs, out, *extra):
    return [
        sys.executable,
        str(ROOT / "tools" / "infer.py"),
        "--config-file",
        str(CONFIG),
        "--input",
        *inputs,
        "--output",
        str(out),
        *extra,
        "MODEL.WEIGHTS",
        str(weights),
        "MODEL.ROI_HEADS.NUM_CLASSES",
        "2",
        "MODEL.LAYOUTLMV3.IMAGE_ONLY",
        "True",
        "MODEL.LAYOUTLMV3.FUSION.TYPE",
        "",
    ]


def test_outputs_that_cannot_be_written_fail_before_any_page_is_read(tmp_path, image_model):
    (tmp_path / "taken").write_text("a file")
    text_page((200, 260)).save(tmp_path / "page.png")
    run = subprocess.run(
        infer_command(image_model, [str(tmp_path / "page.png")], tmp_path / "taken"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert f"error: {tmp_path / 'taken'}: the output folder is a file, not a folder" in run.stderr
    ocr = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "ocr_pages.py"), str(tmp_path), "--out",
         str(tmp_path / "taken")],
        capture_output=True,
        text=True,
        timeout=300,
    )  # fmt: skip
    assert ocr.returncode == 2 and "the output folder is a file" in ocr.stderr
    assert "OCR (" not in ocr.stderr  # no page was OCR'd first


@pytest.mark.slow
def test_a_folder_of_messy_pages_gives_every_good_page_and_names_every_bad_one(
    tmp_path, image_model
):
    pages = tmp_path / "pages"
    pages.mkdir()
    text_page((400, 520), seed=1).save(pages / "good.png")
    header_only_png(pages / "bomb.png", 20000, 10000)
    frames = [text_page((300, 400), seed=s) for s in (2, 3, 4)]
    frames[0].save(pages / "scan.tif", save_all=True, append_images=frames[1:])
    text_page((360, 480), seed=5).save(os.fsencode(pages) + b"/caf\xe9.png")
    (pages / "cut.png").write_bytes((pages / "good.png").read_bytes()[:300])
    out = tmp_path / "out"
    run = subprocess.run(
        infer_command(image_model, [str(pages)], out, "--score-threshold", "1.0"),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 1, run.stderr[-3000:]
    assert "Traceback" not in run.stderr
    assert "5 pages done, 0 done by an earlier run, 2 skipped" in run.stdout
    failed = dict(line.split("\t") for line in (out / "failed.txt").read_text().splitlines())
    assert "200 megapixels" in failed[str(pages / "bomb.png")]
    assert "cannot read image" in failed[str(pages / "cut.png")]
    for index in (1, 2, 3):  # every frame of the TIFF is a page
        record = json.loads((out / "predictions" / "scan" / f"page-{index:04d}.json").read_text())
        assert record["source"] == f"{pages / 'scan.tif'}#page={index}"
        assert (record["width"], record["height"]) == (300, 400)
    cafe_json = os.fsdecode(os.fsencode(out / "predictions") + b"/caf\xe9.json")
    cafe = json.loads(Path(cafe_json).read_text())
    assert cafe["source"] == f"{pages}/caf\\xe9.png"
    assert "5 of 5 pages with no detection" in run.stdout  # a threshold nothing passes is said
    assert "Check the score threshold (--score-threshold" in run.stdout  # and what to check


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def interrupt_and_resume(command, done_folder: Path, pattern: str, total: int):
    """Start ``command`` in its own process group, send the group SIGINT once the first output
    exists, and check the end: one line, exit 130, no process left; then the rerun finishes."""
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        # a suite started in the background (`make test &`) ignores SIGINT, and so would the
        # command: give it the default, as a terminal's Ctrl-C finds it
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        wait_for(lambda: any(done_folder.rglob(pattern)), 300, f"a first {pattern}")
        os.killpg(process.pid, signal.SIGINT)
        _, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 130, stderr[-3000:]
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr
    assert "run the same command to resume" in stderr.splitlines()[-1]
    done = len(list(done_folder.rglob(pattern)))
    assert 0 < done < total, "the run was not interrupted mid-way"

    def group_is_gone():
        try:
            os.killpg(process.pid, 0)
        except ProcessLookupError:
            return True
        return False

    wait_for(group_is_gone, 30, "the worker processes to end")
    rerun = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert len(list(done_folder.rglob(pattern))) == total


@pytest.mark.slow
def test_ctrl_c_mid_detection_ends_with_one_line_and_the_rerun_completes(tmp_path, image_model):
    pages = tmp_path / "pages"
    pages.mkdir()
    for index in range(40):
        text_page((600, 800), seed=index).save(pages / f"p{index:02d}.png")
    out = tmp_path / "out"
    command = infer_command(image_model, [str(pages)], out)
    interrupt_and_resume(command, out / "predictions", "*.json", 40)


@pytest.mark.slow
def test_ctrl_c_mid_ocr_stops_every_worker_and_the_rerun_completes(tmp_path):
    pages = tmp_path / "pages"
    pages.mkdir()
    for index in range(8):
        text_page((500, 650), seed=index).save(pages / f"p{index}.png")
    out = tmp_path / "OCR"
    command = [sys.executable, str(ROOT / "tools" / "ocr_pages.py"), str(pages), "--out",
               str(out), "--workers", "2"]  # fmt: skip
    interrupt_and_resume(command, out, "*.json", 8)


# --- property-based: any input loads or gives one error naming the file ---------------------

JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(10**6), 10**6)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=6)
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=8,
)
OCR_BOXES = st.lists(
    st.one_of(
        JSON_VALUES,
        st.lists(st.one_of(st.integers(-50, 400), st.floats(-50, 400), JSON_SCALARS), max_size=5),
    ),
    max_size=6,
)
OCR_PAGES = st.fixed_dictionaries(
    {},
    optional={
        "words": st.one_of(JSON_VALUES, st.lists(st.one_of(st.text(max_size=12), JSON_VALUES))),
        "bbox": st.one_of(JSON_VALUES, OCR_BOXES),
        "W": st.one_of(JSON_SCALARS, st.integers(1, 500)),
        "H": st.one_of(JSON_SCALARS, st.integers(1, 500)),
        "engine": JSON_VALUES,
    },
)


@st.composite
def well_formed_ocr_pages(draw):
    """Pages whose structure is right (equal-length lists, a page size), their entries anything."""
    count = draw(st.integers(1, 8))
    odd = st.sampled_from([math.nan, math.inf, -math.inf, None, "7", "x", True, [], {}])
    number = st.one_of(
        st.integers(-100, 600), st.floats(-100, 600), st.sampled_from([-5, 10, 50, math.nan])
    )
    numbers = st.lists(number, min_size=4, max_size=4)
    box = st.one_of(
        numbers,
        numbers,
        st.lists(st.one_of(number, odd), min_size=4, max_size=4),
        st.lists(number, max_size=6),
        JSON_VALUES,
    )
    word = st.one_of(st.text("abc xyz,.", min_size=1, max_size=10), st.text(max_size=6), odd)
    return {
        "words": draw(st.lists(word, min_size=count, max_size=count)),
        "bbox": draw(st.lists(box, min_size=count, max_size=count)),
        "W": draw(st.one_of(st.sampled_from([300, 612, 1000]), st.integers(1, 2000))),
        "H": draw(st.one_of(st.sampled_from([300, 792, 1000]), st.integers(1, 2000))),
    }  # fmt: skip


PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(page=st.one_of(well_formed_ocr_pages(), OCR_PAGES, JSON_VALUES))
def test_any_ocr_json_loads_and_tokenizes_or_names_the_file_and_field(
    page, bpe_folder, tmp_path_factory
):
    path = tmp_path_factory.mktemp("ocr") / "page.json"
    path.write_text(json.dumps(page))
    try:
        read = read_ocr_json(path)
    except ValueError as error:
        assert str(error).startswith(f"{path}: OCR JSON ")
        return
    segments = OCRPageTokenizer(bpe_folder).tokenize_segments(read, source=str(path))
    assert len(segments.ids) + sum(segments.dropped.values()) <= len(read["words"])
    assert np.isfinite(segments.boxes).all()
    assert (segments.boxes[:, 2:] >= segments.boxes[:, :2]).all()
    assert (segments.boxes[:, 2] <= read["W"]).all() and (segments.boxes[:, 3] <= read["H"]).all()
    detections = [{"category": "text", "category_id": 0, "score": 0.9, "bbox": [0, 0, 50, 50]}]
    page_regions(detections, 100, read)


COCO_FIELDS = st.one_of(JSON_SCALARS, st.integers(1, 3), st.lists(st.integers(-5, 200), max_size=5))
COORDINATE = st.one_of(st.integers(-20, 220), st.floats(-20, 220))
ANNOTATION = st.fixed_dictionaries(
    {
        "id": st.integers(1, 8),
        "image_id": st.integers(1, 3),
        "category_id": st.one_of(st.just(1), st.just(1), COCO_FIELDS),
        "bbox": st.one_of(
            st.lists(COORDINATE, min_size=4, max_size=4),
            st.lists(COORDINATE, min_size=4, max_size=4),
            COCO_FIELDS,
        ),
    },
    optional={
        "segmentation": st.one_of(JSON_VALUES, st.lists(st.lists(st.integers(0, 99)))),
        "iscrowd": st.one_of(st.just(0), COCO_FIELDS),
        "area": COCO_FIELDS,
    },
)
IMAGE = st.fixed_dictionaries(
    {
        "id": st.integers(1, 3),
        "file_name": st.one_of(st.sampled_from(["a.png", "b.png", "c.png"]), JSON_SCALARS),
        "width": st.one_of(st.sampled_from([100, 200]), st.just(100), JSON_SCALARS),
        "height": st.one_of(st.sampled_from([100, 150]), st.just(100), JSON_SCALARS),
    }
)
CATEGORY = st.fixed_dictionaries(
    {
        "id": st.one_of(st.just(1), st.integers(0, 3), JSON_SCALARS),
        "name": st.one_of(st.sampled_from(["text", "title", "_background_"]), st.just("text")),
    }
)


def renumbered(coco: dict) -> dict:
    """``coco`` with its object entries' ids (and image file names) made unique, so that more
    generated files get past the duplicate-id rules to the per-box ones."""
    coco = dict(coco)
    for key in ("images", "annotations", "categories"):
        entries = coco.get(key, [])
        coco[key] = [
            {**e, "id": i + 1, **({"file_name": f"p{i}.png"} if key == "images" else {})}
            if isinstance(e, dict)
            else e
            for i, e in enumerate(entries)
        ]
    return coco


WELL_FORMED_COCO = st.fixed_dictionaries(
    {
        "images": st.lists(
            st.fixed_dictionaries(
                {"width": st.sampled_from([100, 200]), "height": st.sampled_from([100, 150])}
            ),
            min_size=1,
            max_size=3,
        ),
        "annotations": st.lists(
            st.fixed_dictionaries(
                {
                    "image_id": st.integers(1, 3),
                    "category_id": st.just(1),
                    "bbox": st.lists(COORDINATE, min_size=4, max_size=4),
                }
            ),
            min_size=1,
            max_size=8,
        ),
        "categories": st.just([{"id": 1, "name": "text"}]),
    }
).map(renumbered)
COCO_FILES = st.fixed_dictionaries(
    {},
    optional={
        "images": st.lists(st.one_of(IMAGE, IMAGE, JSON_VALUES), max_size=3),
        "annotations": st.lists(st.one_of(ANNOTATION, ANNOTATION, JSON_VALUES), max_size=8),
        "categories": st.lists(st.one_of(CATEGORY, CATEGORY, JSON_VALUES), max_size=3),
    },
)


@PROPERTY
@given(coco=st.one_of(WELL_FORMED_COCO, COCO_FILES, JSON_VALUES))
def test_any_coco_file_loads_or_gives_errors_naming_the_file(coco, tmp_path_factory):
    root = tmp_path_factory.mktemp("coco")
    path = root / "ann.json"
    path.write_text(json.dumps(coco))
    for mask_on in (True, False):
        read = read_coco(coco if isinstance(coco, dict) else {}, path, mask_on=mask_on)
        assert all(finding.message.startswith(f"{path}: ") for finding in read.findings)
    name = f"hypothesis_{root.name}"
    register_layout_dataset(name, path, root)
    try:
        records = DatasetCatalog.get(name)
    except ValueError as error:
        assert str(error).startswith(f"{path}: ") and read.errors
        return
    finally:
        DatasetCatalog.remove(name)
    assert not read.errors
    for record in records:
        for annotation in record["annotations"]:
            x, y, w, h = annotation["bbox"]
            assert w > 0 and h > 0 and x >= 0 and y >= 0
            assert x + w <= record["width"] and y + h <= record["height"]


@pytest.mark.slow
def test_an_unreadable_page_does_not_end_a_training_run(tmp_path, caplog):
    from conftest import write_rectangle_coco

    from ditod import LayoutTrainer

    coco_json = write_rectangle_coco(tmp_path, num_images=4)
    broken = tmp_path / "images" / "page_002.png"
    broken.write_bytes(broken.read_bytes()[:200])
    register_layout_dataset("with_a_broken_page", coco_json, tmp_path / "images")
    cfg = tiny_cfg()
    cfg.DATASETS.TRAIN, cfg.DATASETS.TEST = ("with_a_broken_page",), ()
    cfg.SOLVER.MAX_ITER, cfg.SOLVER.IMS_PER_BATCH = 6, 2
    cfg.DATALOADER.NUM_WORKERS, cfg.OUTPUT_DIR = 0, str(tmp_path / "out")
    try:
        with caplog.at_level("WARNING"):
            LayoutTrainer(cfg).train()
    finally:
        DatasetCatalog.remove("with_a_broken_page")
    assert (tmp_path / "out" / "model_final.pth").is_file()
    assert f"skipped a training page (1 so far in this process): {broken}" in caplog.text
