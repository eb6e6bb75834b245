"""Full-line OCR vs first-token OCR (``--first-tokens 3``) on the same pages, in one run: time
and how many lines give the model the same first 3 tokens.

    python benchmarks/ocr_first_tokens.py [--images DIR] [--pages 20] [--k 3] [--out F]
    python benchmarks/ocr_first_tokens.py --language zh [--pages 6]   # synthetic Chinese pages

Both engines run in this process with every core's thread (the best single-process setting,
``ocr_layouts.json``), loaded before the clock, each page OCR'd by both in turn (the machine's
load falls on both alike). Lines are matched by
their box (first-token OCR keeps every detected line's full box); a line counts as the same
when its first k words are equal, which for whitespace-split tokenizers (RoBERTa BPE, XLM-R)
implies equal first k tokens. Lines found by only one of the two count as different.

Chinese (``--language zh``, pages from the synthetic generator, written to
``ocr_first_tokens_zh.json``): three engines, full lines, first-token OCR cut at 3 characters a
token, and cut where the tokens of ``--tokenizer`` end (an XLM-R-style sentencepiece trained on
the pages' own text, ``--vocab`` pieces); a line counts as the same when its first k tokens are
(a lone leading "▁" dropped, as the model does), and for the bound cut also when its first
``3 k + 1`` characters are.
"""

import argparse
import json
import tempfile
from pathlib import Path

from _harness import stopwatch, write_result

from ditod.pages.engines import build_engine
from ditod.pages.first_tokens import CHARACTERS_PER_TOKEN
from ditod.pages.image_io import find_images, read_page_image
from ditod.pages.ocr_runner import available_cores
from layoutlmv3.tokenization import (
    OCRPageTokenizer,
    load_tokenizer,
    train_sentencepiece_tokenizer,
)

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT.parent / "shared" / "data" / "publaynet-samples"


def read_with_both(*engines, image_path) -> list[tuple[dict, float]]:
    """Each engine's lines of the page (box → text) and the seconds it took, in turn."""
    image = read_page_image(image_path)
    results = []
    for engine in engines:
        with stopwatch() as elapsed:
            lines = {tuple(box): text for box, text, _, _ in engine(image)}
        results.append((lines, elapsed.seconds))
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", default=str(SAMPLES), help="folder of page images")
    parser.add_argument("--pages", type=int, default=20)
    parser.add_argument("--k", type=int, default=3)
    parser.add_argument("--language", choices=["en", "zh"], default="en")
    parser.add_argument(
        "--vocab", type=int, default=2000, help="zh: pieces of the sentencepiece (the demo's)"
    )
    parser.add_argument("--out")
    args = parser.parse_args()
    if args.language == "zh":
        return chinese(args)
    args.out = args.out or "benchmarks/results/ocr_first_tokens.json"
    images = find_images(args.images)[: args.pages]
    threads = available_cores()
    full_engine = build_engine("rapidocr", threads=threads)
    start_engine = build_engine("rapidocr", threads=threads, first_tokens=args.k)
    full_time = start_time = 0.0
    same = lines = cut = long = 0
    for image_path in images:
        (full, seconds_full), (start, seconds_start) = read_with_both(
            full_engine, start_engine, image_path=image_path
        )
        full_time, start_time = full_time + seconds_full, start_time + seconds_start
        for box in full.keys() | start.keys():
            a, b = (full.get(box) or "").split(), (start.get(box) or "").split()
            lines += 1
            same += a[: args.k] == b[: args.k]
            if len(a) > args.k + 2 and box in start:
                long += 1
                cut += len(b) == args.k
        print(f"{image_path.name}: full {full_time:.1f} s, first tokens {start_time:.1f} s")
    summary = {
        "benchmark": f"OCR (rapidocr, {threads} threads): full lines vs first {args.k} tokens, "
        f"{len(images)} pages of {Path(args.images).name}",
        "device": f"cpu ({available_cores()} cores)",
        "full_s_per_page": full_time / len(images),
        "first_tokens_s_per_page": start_time / len(images),
        "speedup": full_time / start_time,
        "same_tokens_fraction": same / lines,
        "lines": lines,
        "long_lines_cut_fraction": cut / max(long, 1),
        "targets": {"speedup": ">= 2", "same_tokens_fraction": ">= 0.95"},
    }
    write_result(summary, args.out)


def chinese(args) -> None:
    from ditod.data import synthetic

    threads = available_cores()
    keep = CHARACTERS_PER_TOKEN * args.k + 1
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        synthetic.generate(scratch, pages=args.pages, language="zh", seed=5, split_val=0.0)
        truth = [
            w for p in (scratch / "OCR").glob("*.json") for w in json.loads(p.read_text())["words"]
        ]
        folder = train_sentencepiece_tokenizer(truth, scratch / "xlmr", args.vocab)
        # the model's first k tokens of a line (a lone leading "▁" dropped)
        model_tokens = OCRPageTokenizer(
            load_tokenizer(folder), tokens_per_segment=args.k, drop_leading_space=True
        ).segment_ids
        engines = {
            "full": build_engine("rapidocr", threads=threads),
            "first_tokens": build_engine("rapidocr", threads=threads, first_tokens=args.k),
            "first_tokens_tokenizer": build_engine(
                "rapidocr", threads=threads, first_tokens=args.k, tokenizer=folder
            ),
        }
        seconds = dict.fromkeys(engines, 0.0)
        same_chars = lines = 0
        same_tokens = dict.fromkeys(("first_tokens", "first_tokens_tokenizer"), 0)
        cut = dict.fromkeys(same_tokens, 0)
        long = 0
        for image_path in find_images(scratch / "images"):
            read = dict(zip(engines, read_with_both(*engines.values(), image_path=image_path)))
            for name, (_, elapsed) in read.items():
                seconds[name] += elapsed
            full = read["full"][0]
            boxes = set(full).union(*(read[name][0] for name in same_tokens))
            for box in boxes:
                a = full.get(box) or ""
                lines += 1
                same_chars += a[:keep] == (read["first_tokens"][0].get(box) or "")[:keep]
                for name in same_tokens:
                    b = read[name][0].get(box) or ""
                    same = model_tokens(a) == model_tokens(b)
                    same_tokens[name] += same
                    cut[name] += len(a) > keep + 10 and box in read[name][0] and len(b) < len(a)
                long += len(a) > keep + 10 and box in read["first_tokens"][0]
    summary = {
        "benchmark": f"OCR (rapidocr, {threads} threads) of Chinese: full lines vs first "
        f"{args.k} tokens (cut at {CHARACTERS_PER_TOKEN} characters a token, and where the "
        f"tokenizer's tokens end), {args.pages} synthetic Chinese pages; tokens: an XLM-R-style "
        f"sentencepiece (unigram, {args.vocab} pieces) trained on the pages' text, a lone "
        "leading '▁' dropped as the model does",
        "device": f"cpu ({available_cores()} cores)",
        "full_s_per_page": seconds["full"] / args.pages,
        "first_tokens_s_per_page": seconds["first_tokens"] / args.pages,
        "first_tokens_tokenizer_s_per_page": seconds["first_tokens_tokenizer"] / args.pages,
        "speedup": seconds["full"] / seconds["first_tokens"],
        "speedup_tokenizer": seconds["full"] / seconds["first_tokens_tokenizer"],
        "same_characters_fraction": same_chars / lines,
        "same_tokens_fraction": same_tokens["first_tokens"] / lines,
        "same_tokens_fraction_tokenizer": same_tokens["first_tokens_tokenizer"] / lines,
        "lines": lines,
        "long_lines_cut_fraction": cut["first_tokens"] / max(long, 1),
        "long_lines_cut_fraction_tokenizer": cut["first_tokens_tokenizer"] / max(long, 1),
        "targets": {
            "speedup_tokenizer": ">= 2",
            "same_tokens_fraction_tokenizer": ">= 0.95",
        },
    }
    write_result(summary, args.out or "benchmarks/results/ocr_first_tokens_zh.json")


if __name__ == "__main__":
    main()
