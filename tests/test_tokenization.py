"""OCR page tokenization with real tokenizers built in-process (RoBERTa BPE and XLM-R spm)."""

import logging

import pytest
import torch
from transformers import LayoutLMv3Config

from layoutlmv3 import LayoutLMv3DetectionModel, OCRPageTokenizer, normalize_box


def page(words, boxes, width=1000, height=800):
    return {"words": words, "bbox": boxes, "W": width, "H": height}


def test_bpe_page_has_specials_and_segment_boxes(bpe_folder):
    tokenizer = OCRPageTokenizer(bpe_folder)
    words = ["Figure 3: results", "Table 2"]
    encoded = tokenizer(page(words, [[100, 80, 300, 40], [500, 400, 100, 20]]))
    hf = tokenizer.tokenizer
    expected = [hf.convert_tokens_to_ids(hf.tokenize(w)) for w in words]
    flat = [i for ids in expected for i in ids]
    assert encoded.input_ids.tolist() == [hf.cls_token_id, *flat, hf.sep_token_id]
    boxes = encoded.bbox.tolist()
    assert boxes[0] == boxes[-1] == [0, 0, 0, 0]
    assert boxes[1 : 1 + len(expected[0])] == [[100, 100, 400, 150]] * len(expected[0])
    assert boxes[1 + len(expected[0]) : -1] == [[500, 500, 600, 525]] * len(expected[1])
    assert encoded.attention_mask.tolist() == [1] * len(boxes)


def test_tokens_per_segment_caps_each_segment(bpe_folder):
    words = ["Introduction to the model results", "Figure 3: results of the model"]
    boxes = [[0, 0, 10, 10], [0, 20, 10, 10]]
    every = OCRPageTokenizer(bpe_folder, tokens_per_segment=0)(page(words, boxes))
    three = OCRPageTokenizer(bpe_folder, tokens_per_segment=3)(page(words, boxes))
    assert len(every.input_ids) > 2 + 6
    assert len(three.input_ids) == 2 + 3 + 3
    segment_of = [tuple(b) for b in three.bbox.tolist()[1:-1]]
    assert segment_of == [(0, 0, 10, 12)] * 3 + [(0, 25, 10, 38)] * 3  # round half to even


def test_total_cap(bpe_folder):
    words = ["Figure 3: results of the model"] * 50
    encoded = OCRPageTokenizer(bpe_folder, max_tokens=37)(page(words, [[0, 0, 5, 5]] * 50))
    assert len(encoded.input_ids) == 37 + 2
    with pytest.raises(ValueError, match=r"max_tokens must be in 1\.\.510"):
        OCRPageTokenizer(bpe_folder, max_tokens=600)


def test_truncation_lines_gives_every_line_its_first_tokens(bpe_folder):
    """Over the cap, "end" leaves the last lines without text; "lines" keeps each line's first
    tokens (as many a line as fit, the rest one more for the first lines) and, with more lines
    than the cap, one token of evenly spaced lines from the first to the last."""
    words = [f"line {i} of the text" for i in range(20)]
    boxes = [[0, 10 * i, 50, 8] for i in range(20)]
    full = OCRPageTokenizer(bpe_folder, max_tokens=510)(page(words, boxes))
    assert full.tokens_cut == 0 and len(full.input_ids) - 2 >= 20 * 5

    def lines_and_counts(encoded):
        tops = [box[1] for box in encoded.bbox.tolist()[1:-1]]
        return sorted(set(tops)), [tops.count(top) for top in sorted(set(tops))]

    end = OCRPageTokenizer(bpe_folder, max_tokens=50)(page(words, boxes))
    lines = OCRPageTokenizer(bpe_folder, max_tokens=50, truncation="lines")(page(words, boxes))
    assert len(end.input_ids) == len(lines.input_ids) == 52
    assert end.tokens_cut == lines.tokens_cut == len(full.input_ids) - 52
    assert len(lines_and_counts(end)[0]) < 20 // 2
    tops, counts = lines_and_counts(lines)
    assert len(tops) == 20 and counts == [3] * 10 + [2] * 10
    assert lines.input_ids.tolist()[1:4] == full.input_ids.tolist()[1:4]  # each line's first
    sparse = OCRPageTokenizer(bpe_folder, max_tokens=5, truncation="lines")(page(words, boxes))
    tops, counts = lines_and_counts(sparse)
    assert counts == [1] * 5 and tops[0] == 0 and tops[-1] == full.bbox.tolist()[-2][1]
    fits = OCRPageTokenizer(bpe_folder, truncation="lines")(page(words, boxes))
    assert fits.input_ids.tolist() == full.input_ids.tolist()
    with pytest.raises(ValueError, match="truncation must be one of"):
        OCRPageTokenizer(bpe_folder, truncation="middle")


def test_xlmr_leading_space_drop(xlmr_folder):
    keep = OCRPageTokenizer(xlmr_folder)
    drop = OCRPageTokenizer(xlmr_folder, drop_leading_space=True)
    spm_tokenizer = keep.tokenizer
    assert spm_tokenizer.tokenize("表格")[0] == "▁"  # the case the rule is for
    lone = spm_tokenizer.convert_tokens_to_ids("▁")
    assert keep.segment_ids("表格")[0] == lone
    assert drop.segment_ids("表格") == spm_tokenizer.convert_tokens_to_ids(["表", "格"])


def test_drop_unknown(xlmr_folder):
    tokenizer = OCRPageTokenizer(xlmr_folder, drop_unknown=True, drop_leading_space=True)
    unk = tokenizer.tokenizer.unk_token_id
    assert unk in OCRPageTokenizer(xlmr_folder).segment_ids("表格Ω")
    assert unk not in tokenizer.segment_ids("表格Ω")


def test_empty_page_has_no_tokens(bpe_folder):
    encoded = OCRPageTokenizer(bpe_folder)(page([], []))
    assert encoded.input_ids.shape == (0,) and encoded.bbox.shape == (0, 4)
    assert OCRPageTokenizer(bpe_folder)({"words": [], "bbox": []}).input_ids.numel() == 0


def test_boxes_outside_the_page_are_clamped_and_nan_skipped(bpe_folder, caplog):
    assert normalize_box([-50, 700, 2000, 300], 1000, 800) == [0, 875, 1000, 1000]
    assert normalize_box([300, 100, -100, -50], 1000, 800) == [200, 62, 300, 125]
    words = ["Figure", "Table", "Introduction"]
    boxes = [[-50, 700, 2000, 300], [float("nan"), 0, 10, 10], [10, 10, 10, 10]]
    with caplog.at_level(logging.WARNING):
        encoded = OCRPageTokenizer(bpe_folder)(page(words, boxes), source="p1.json")
    assert encoded.dropped_segments == 1
    assert "p1.json: 1 of 3 OCR segments dropped (1 malformed box)" in caplog.text
    assert encoded.bbox.min() >= 0 and encoded.bbox.max() <= 1000
    assert [0, 875, 1000, 1000] in encoded.bbox.tolist()


def test_mismatched_words_and_boxes_name_the_source(bpe_folder):
    with pytest.raises(
        ValueError, match=r"p7\.json: 'words' and 'bbox' have different lengths \(2 vs 1\)"
    ):
        OCRPageTokenizer(bpe_folder)(page(["a", "b"], [[0, 0, 1, 1]]), source="p7.json")


def test_missing_folder_and_vocab_mismatch_are_clear(bpe_folder, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"tokenizer folder .*nope does not exist"):
        OCRPageTokenizer(tmp_path / "nope")
    with pytest.raises(ValueError, match="has 300 tokens but the model has a vocabulary of 100"):
        OCRPageTokenizer(bpe_folder).check_vocab_size(100)
    OCRPageTokenizer(bpe_folder).check_vocab_size(300)


def test_encoded_page_runs_through_the_model(bpe_folder):
    encoded = OCRPageTokenizer(bpe_folder)(page(["Figure 3: results"], [[10, 10, 200, 30]]))
    config = LayoutLMv3Config(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        vocab_size=300,
        coordinate_size=4,
        shape_size=8,
    )
    model = LayoutLMv3DetectionModel(config).eval()
    out = model(
        input_ids=encoded.input_ids[None],
        bbox=encoded.bbox[None],
        attention_mask=encoded.attention_mask[None],
        pixel_values=torch.zeros(1, 3, 64, 96),
    )
    assert out.last_hidden_state.shape == (1, len(encoded.input_ids) + 1 + 4 * 6, 32)
