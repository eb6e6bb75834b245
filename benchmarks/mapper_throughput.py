"""Dataset mapper with OCR text, pages/s: ``LayoutDatasetMapper`` (one tokenizer per process, each
page tokenized once) vs the original experiments' way (``AutoTokenizer.from_pretrained`` for
every page, then token by token), same image pipeline, same pages, in one process; median time of
a pass over the pages (``torch.utils.benchmark``).

    python benchmarks/mapper_throughput.py [--pages 40] [--out results.json]

The tokenizer is a byte-level BPE of layoutlmv3-base's size (50,265 tokens; the hub is out of
reach here) trained on the pages' text plus random words; loading one takes ~0.3 s on this
machine, as loading the real one does.
"""

import argparse
import json
import os
import random
import string
import tempfile
from pathlib import Path

import torch
from _harness import measure, write_result
from detectron2.config import get_cfg
from transformers import AutoTokenizer

from ditod import add_layoutlmv3_config
from ditod.data.datasets import load_layout_coco_json
from ditod.data.mapper import LayoutDatasetMapper
from ditod.data.synthetic import generate as generate_synthetic_pages
from ditod.pages.ocr_json import ocr_folder_lines, read_ocr_json
from layoutlmv3.tokenization import normalize_box, train_bpe_tokenizer

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "demo" / "cascade_layoutlmv3_tiny_synthetic.yaml"


class SeedMapper(LayoutDatasetMapper):
    """The same mapper with the seed's text step: a tokenizer loaded per page, capped at 300."""

    def __init__(self, *args, tokenizer_folder, **kwargs):
        super().__init__(*args, **kwargs)
        self.tokenizer_folder = tokenizer_folder

    def _page_segments(self, dataset_dict):
        return dataset_dict  # the seed tokenized in its text step, below

    def page_text(self, dataset_dict, transforms, original_hw, augmented_hw):
        page = read_ocr_json(dataset_dict["ocr_file"])
        tokenizer = AutoTokenizer.from_pretrained(self.tokenizer_folder)
        segments, boxes = [], []
        for text, box in zip(page["words"], page["bbox"]):
            segments.append(tokenizer.convert_tokens_to_ids(tokenizer.tokenize(text)))
            boxes.append(normalize_box(box, page["W"], page["H"]))
        return self.tokenizer.encode(segments, boxes)


def roberta_sized_tokenizer(ocr_folder: Path, out: Path, vocab_size: int = 50265) -> Path:
    """A LayoutLMv3 (byte-level BPE) tokenizer of ``vocab_size`` tokens: the pages' lines plus
    random words, so that it has as many merges to load as the real one."""
    lines = ocr_folder_lines(ocr_folder)
    rng = random.Random(0)
    letters = string.ascii_lowercase
    filler = [
        " ".join("".join(rng.choice(letters) for _ in range(rng.randint(3, 12))) for _ in range(20))
        for _ in range(15000)
    ]
    return train_bpe_tokenizer(lines + filler, out, vocab_size=vocab_size, min_frequency=1)


def pages_per_second(mapper, records, min_run_time: float, cold: bool = True) -> float:
    """Pages/s of mapping ``records``; ``cold``: every pass tokenizes every page again (the
    tokens cache is emptied first), else later passes take the tokens from the cache."""

    def one_pass():
        if cold:
            mapper._segments_cache.clear()
        for record in records:
            mapper(record)

    return len(records) / measure(one_pass, min_run_time).median


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=40)
    parser.add_argument("--min-run-time", type=float, default=10.0, help="seconds timed each")
    parser.add_argument("--out", default="benchmarks/results/mapper_throughput.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        paths = generate_synthetic_pages(scratch, pages=args.pages, seed=3, split_val=0)
        tokenizer = roberta_sized_tokenizer(scratch / "OCR", scratch / "tokenizer")
        records = load_layout_coco_json(paths["train"], scratch / "images", scratch / "OCR")
        cfg = get_cfg()
        add_layoutlmv3_config(cfg)
        cfg.merge_from_file(str(CONFIG))
        cfg.MODEL.LAYOUTLMV3.TEXT.TOKENIZER = str(tokenizer)
        ours = LayoutDatasetMapper(cfg, is_train=True)
        seed = SeedMapper(cfg, is_train=True, tokenizer_folder=str(tokenizer))
        ours_rate = pages_per_second(ours, records, args.min_run_time)
        seed_rate = pages_per_second(seed, records, args.min_run_time)
        cached_rate = pages_per_second(ours, records, args.min_run_time, cold=False)
        lines = sum(len(json.loads(Path(r["ocr_file"]).read_text())["words"]) for r in records)
    summary = {
        "benchmark": f"dataset mapper with OCR text, {len(records)} synthetic pages "
        f"({lines / len(records):.0f} lines each), vs tokenizer created per page",
        "device": f"cpu ({os.cpu_count()} cores, 1 thread)",
        "speedup": ours_rate / seed_rate,
        "pages_per_s": ours_rate,
        "pages_per_s_baseline": seed_rate,
        "pages_per_s_cached_epoch": cached_rate,
        "tokenizer_tokens": len(ours.tokenizer.tokenizer),
        "targets": {"speedup": ">= 10"},
    }
    write_result(summary, args.out)


if __name__ == "__main__":
    main()
