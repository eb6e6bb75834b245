"""LayoutDatasetMapper: OCR token boxes follow the image through crops and resizes."""

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from detectron2.data import transforms as T
from PIL import Image

from ditod.data.mapper import LayoutDatasetMapper, jitter_boxes
from layoutlmv3 import OCRPageTokenizer

WORDS = ["Figure", "Table", "accuracy", "results", "model", "Introduction"]


def write_page(tmp_path, seed=0, size=(480, 360), rows=6, cols=2):
    """A white page with black word blocks in a grid; OCR JSON naming each block exactly."""
    rng = np.random.default_rng(seed)
    width, height = size
    page = np.full((height, width, 3), 255, np.uint8)
    boxes, words = [], []
    for r in range(rows):
        for c in range(cols):
            x = 20 + c * (width // cols) + int(rng.integers(0, 30))
            y = 20 + r * (height - 40) // rows
            w, h = int(rng.integers(60, width // cols - 60)), 18
            page[y : y + h, x : x + w] = 0
            boxes.append([x, y, w, h])
            words.append(WORDS[(r * cols + c) % len(WORDS)])
    image = tmp_path / f"page{seed}.png"
    Image.fromarray(page).save(image)
    ocr = tmp_path / f"page{seed}.json"
    ocr.write_text(json.dumps({"bbox": boxes, "words": words, "W": width, "H": height}))
    record = {
        "file_name": str(image),
        "height": height,
        "width": width,
        "image_id": seed,
        "ocr_file": str(ocr),
        "annotations": [],
    }
    return record, boxes


def mapper(tokenizer, augmentations, is_train=True, **kwargs):
    return LayoutDatasetMapper(
        is_train=is_train,
        augmentations=augmentations,
        image_format="RGB",
        use_instance_mask=False,
        instance_mask_format="polygon",
        use_keypoint=False,
        recompute_boxes=False,
        tokenizer=tokenizer,
        **kwargs,
    )


@pytest.mark.parametrize("seed", range(4))
def test_token_boxes_stay_on_their_words_after_crop_and_resize(tmp_path, bpe_folder, seed):
    record, _ = write_page(tmp_path, seed)
    tokenizer = OCRPageTokenizer(bpe_folder, max_tokens=500)
    augment = [
        T.RandomCrop("absolute_range", (200, 240)),
        T.ResizeShortestEdge([300], 600, "choice"),
    ]
    np.random.seed(seed)
    out = mapper(tokenizer, augment)(record)
    image = out["image"].float().mean(0)  # (h, w), words are 0, paper 255
    height, width = image.shape
    token_boxes = out["bbox"][1:-1].double() / 1000 * torch.tensor([width, height] * 2)
    assert len(token_boxes) > 0
    for x0, y0, x1, y1 in token_boxes.round().long().tolist():
        inside = image[y0 : max(y1, y0 + 1), x0 : max(x1, x0 + 1)]
        assert inside.mean() < 80, (x0, y0, x1, y1, inside.mean())  # on ink, not on paper
    # every word still visible has its tokens; none of the cropped-out ones does
    visible = (image < 128).sum().item()
    covered = torch.zeros_like(image, dtype=torch.bool)
    for x0, y0, x1, y1 in token_boxes.round().long().tolist():
        covered[y0:y1, x0:x1] = True
    assert ((image < 128) & covered).sum().item() >= 0.9 * visible


def test_page_is_tokenized_once(tmp_path, bpe_folder, monkeypatch):
    record, _ = write_page(tmp_path)
    tokenizer = OCRPageTokenizer(bpe_folder)
    calls = []
    original = tokenizer.tokenize_segments
    monkeypatch.setattr(
        tokenizer, "tokenize_segments", lambda *a, **k: calls.append(1) or original(*a, **k)
    )
    m = mapper(tokenizer, [T.ResizeShortestEdge([200, 300], 600, "choice")])
    first, second = m(record), m(record)
    assert len(calls) == 1
    assert torch.equal(first["input_ids"], second["input_ids"])


def test_missing_ocr_is_an_error_naming_the_page_or_a_counted_skip(tmp_path, bpe_folder, caplog):
    record, _ = write_page(tmp_path)
    record["ocr_file"] = str(tmp_path / "nowhere.json")
    tokenizer = OCRPageTokenizer(bpe_folder)
    with pytest.raises(FileNotFoundError, match=r"nowhere.json.*page0.png.*MISSING_OCR"):
        mapper(tokenizer, [])(record)
    lenient = mapper(tokenizer, [], missing_ocr="image_only")
    with caplog.at_level(logging.WARNING):
        out = lenient(record)
    assert out["input_ids"].numel() == 0 and lenient.pages_without_ocr == 1
    assert "nowhere.json" in caplog.text


def test_ocr_of_a_resized_copy_is_scaled_to_the_image(tmp_path, bpe_folder):
    record, boxes = write_page(tmp_path)
    ocr_file = Path(record["ocr_file"])
    page = json.loads(ocr_file.read_text())
    page["bbox"] = [[v / 2 for v in box] for box in page["bbox"]]  # OCR ran at half size
    page["W"], page["H"] = page["W"] / 2, page["H"] / 2
    ocr_file.write_text(json.dumps(page))
    out = mapper(OCRPageTokenizer(bpe_folder, max_tokens=500), [])(record)
    x, y, w, h = boxes[0]
    expected = [
        round(1000 * x / 480),
        round(1000 * y / 360),
        round(1000 * (x + w) / 480),
        round(1000 * (y + h) / 360),
    ]
    assert out["bbox"][1].tolist() == expected


def test_box_jitter_moves_edges_within_the_line_height_and_never_turns_a_box_over():
    rng = np.random.default_rng(0)
    boxes = np.array([[10, 20, 300, 32], [50, 40, 60, 400], [0, 0, 2, 2]], dtype=np.float64)
    for _ in range(200):
        moved = jitter_boxes(boxes, 0.3, rng)
        assert (moved[:, 2:] > moved[:, :2]).all()
        assert (np.abs(moved - boxes) <= 0.3 * np.array([[12], [10], [2]]) + 1e-9).all()
    spread = np.std([jitter_boxes(boxes, 0.3, rng)[0] - boxes[0] for _ in range(500)], axis=0)
    np.testing.assert_allclose(spread, 12 * 0.3 / np.sqrt(3), rtol=0.15)  # uniform ±3.6 px
    np.testing.assert_array_equal(jitter_boxes(boxes, 0.0, rng), boxes)


def test_box_jitter_only_in_training(tmp_path, bpe_folder):
    record, _ = write_page(tmp_path)
    tokenizer = OCRPageTokenizer(bpe_folder, max_tokens=500)
    plain = mapper(tokenizer, [])(record)
    np.random.seed(0)
    jittered = [mapper(tokenizer, [], box_jitter=0.3)(record) for _ in range(2)]
    assert torch.equal(plain["input_ids"], jittered[0]["input_ids"])
    shift = (jittered[0]["bbox"] - plain["bbox"]).abs()
    assert 0 < shift.max() <= 1000 * 0.3 * 18 / 360 + 1  # ≤ 0.3 line heights (18 px of 360)
    assert not torch.equal(jittered[0]["bbox"], jittered[1]["bbox"])  # new noise every time
    evaluation = mapper(tokenizer, [], is_train=False, box_jitter=0.3)
    assert torch.equal(evaluation(record)["bbox"], plain["bbox"])
    with pytest.raises(ValueError, match="BOX_JITTER must be in"):
        mapper(tokenizer, [], box_jitter=1.5)


def test_ocr_noise_errs_on_about_the_share_of_words_asked_as_an_engine_does():
    """At rate 0.15, about 15% of the words change, in each of the engine's ways (split by a
    space, run into the next, a character misread or dropped), a misread word within two
    characters of the word; the others stay exact."""
    import difflib

    from ditod.data.ocr_noise import ocr_noise

    rng = np.random.RandomState(0)
    line = "instances to be used as dict keys and stored in the set of models"
    words = line.split()
    kinds = {"split": 0, "run together": 0, "misread": 0}
    changed = 0
    for _ in range(400):
        got = ocr_noise(line, 0.15, rng).split()
        blocks = difflib.SequenceMatcher(None, words, got, autojunk=False).get_opcodes()
        for op, i1, i2, j1, j2 in blocks:
            if op == "equal":
                continue
            changed += i2 - i1
            before, after = "".join(words[i1:i2]), "".join(got[j1:j2])
            if before == after:
                kinds["split" if j2 - j1 > i2 - i1 else "run together"] += 1
            else:
                kinds["misread"] += 1
                assert len(before) - len(after) <= 2 * (i2 - i1), (words[i1:i2], got[j1:j2])
    assert 0.1 < changed / (400 * len(words)) < 0.2, changed / (400 * len(words))
    assert kinds["misread"] > kinds["split"] > kinds["run together"] > 0, kinds
    assert ocr_noise(line, 0.0, rng) == line


def test_ocr_noise_only_in_training_and_new_every_read(tmp_path, bpe_folder):
    """TEXT.OCR_NOISE changes the tokens a training page is read with, anew each read, and never
    the boxes' count or an evaluation page's tokens."""
    record, _ = write_page(tmp_path, rows=12, cols=2)
    tokenizer = OCRPageTokenizer(bpe_folder, max_tokens=500)
    plain = mapper(tokenizer, [])(record)
    np.random.seed(0)
    noisy_mapper = mapper(tokenizer, [], ocr_noise=0.5)
    reads = [noisy_mapper(record)["input_ids"] for _ in range(4)]
    assert any(not torch.equal(read, plain["input_ids"]) for read in reads)
    assert len({tuple(read.tolist()) for read in reads}) > 1  # new noise every read
    evaluation = mapper(tokenizer, [], is_train=False, ocr_noise=0.5)
    assert torch.equal(evaluation(record)["input_ids"], plain["input_ids"])
    with pytest.raises(ValueError, match="OCR_NOISE must be in"):
        mapper(tokenizer, [], ocr_noise=1.0)


def test_lines_cut_for_the_noise_keep_the_first_tokens_the_model_reads(bpe_folder):
    """The noisy read cuts each line to its first tokens_per_segment + 2 words: the first
    tokens of every line are what the whole line gives."""
    from ditod.data.ocr_noise import with_ocr_noise

    rng = np.random.RandomState(0)
    lines = [" ".join(rng.choice([*WORDS, "1998", "(62.23", "±", "0.3)."], 12)) for _ in range(30)]
    page = {"words": lines, "bbox": [[10, 12 * i, 400, 10] for i in range(30)], "W": 480, "H": 400}
    tokenizer = OCRPageTokenizer(bpe_folder, max_tokens=500, tokens_per_segment=3)
    whole = tokenizer.tokenize_segments(page)
    cut = tokenizer.tokenize_segments(with_ocr_noise(page, 0.0, rng, words_per_line=5))
    assert cut.ids == whole.ids and all(len(ids) == 3 for ids in whole.ids)
    assert all(len(line.split()) == 5 for line in with_ocr_noise(page, 0.0, rng, 5)["words"])
