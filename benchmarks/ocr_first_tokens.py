"""Full-line OCR vs first-token OCR (``--first-tokens 3``) on the same pages, in one run: time
and how many lines give the model the same first 3 tokens.

    python benchmarks/ocr_first_tokens.py [--images DIR] [--pages 20] [--k 3] [--out F]

Both engines run in this process with every core's thread (the best single-process setting,
``ocr_layouts.json``), loaded before the clock, each page OCR'd by both in turn (the machine's
load falls on both alike). Lines are matched by
their box (first-token OCR keeps every detected line's full box); a line counts as the same
when its first k words are equal, which for whitespace-split tokenizers (RoBERTa BPE, XLM-R)
implies equal first k tokens. Lines found by only one of the two count as different.
"""

import argparse
import time
from pathlib import Path

from _results import write_result

from ditod.pages.engines import build_engine
from ditod.pages.image_io import find_images, read_page_image
from ditod.pages.ocr_runner import available_cores

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT.parent / "shared" / "data" / "publaynet-samples"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", default=str(SAMPLES), help="folder of page images")
    parser.add_argument("--pages", type=int, default=20)
    parser.add_argument("--k", type=int, default=3)
    parser.add_argument("--out", default="benchmarks/results/ocr_first_tokens.json")
    args = parser.parse_args()
    images = find_images(args.images)[: args.pages]
    threads = available_cores()
    full_engine = build_engine("rapidocr", threads=threads)
    start_engine = build_engine("rapidocr", threads=threads, first_tokens=args.k)
    full_time = start_time = 0.0
    same = lines = cut = long = 0
    for image_path in images:
        image = read_page_image(image_path)
        begin = time.perf_counter()
        full = {tuple(box): text for box, text, _, _ in full_engine(image)}
        full_time += time.perf_counter() - begin
        begin = time.perf_counter()
        start = {tuple(box): text for box, text, _, _ in start_engine(image)}
        start_time += time.perf_counter() - begin
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


if __name__ == "__main__":
    main()
