"""OCR preprocessing throughput (the default engine) with 2 worker processes vs 1, in one run,
and the engine's word recall on synthetic pages with known text.

    python benchmarks/ocr_workers.py [--images DIR] [--pages 6] [--out results.json]

Worker scaling is measured with one onnxruntime thread per worker (1 × 1 vs 2 × 1); the
single-worker default, which gives its one engine every core (1 × cores threads), is recorded
beside it. ``--images`` defaults to the shared PubLayNet samples when present, else synthetic
pages.
"""

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from _results import load_script, write_result

from ditod.pages.ocr import find_images, run_ocr

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT.parent / "shared" / "data" / "publaynet-samples"


def pages_per_second(images, image_root, workers, threads, scratch: Path) -> float:
    out = scratch / f"ocr_{workers}x{threads}"
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    summary = run_ocr(images, image_root, out, workers=workers, threads=threads)
    elapsed = time.perf_counter() - start
    if summary.failed:
        raise RuntimeError(f"OCR failed on {summary.failed}")
    return len(images) / elapsed


def word_recall(scratch: Path, pages: int = 4) -> float:
    root = scratch / "synthetic"
    load_script("datasets/synthetic_pages.py").generate(root, pages=pages, seed=11, split_val=0.0)
    shutil.move(root / "OCR", root / "truth")
    run_ocr(find_images(root / "images"), root / "images", root / "OCR", workers=2)
    found = total = 0
    for truth_file in sorted((root / "truth").glob("*.json")):
        truth = json.loads(truth_file.read_text())
        read = set(" ".join(json.loads((root / "OCR" / truth_file.name).read_text())["words"])
                   .lower().split())  # fmt: skip
        words = [w for line in truth["words"] for w in line.lower().split() if len(w) > 3]
        total += len(words)
        found += sum(word in read for word in words)
    return found / total


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", help="folder of page images")
    parser.add_argument("--pages", type=int, default=6, help="pages timed per setting")
    parser.add_argument("--out", default="benchmarks/results/ocr_workers.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        if args.images:
            image_root = Path(args.images)
        elif SAMPLES.is_dir():
            image_root = SAMPLES
        else:
            image_root = scratch / "pages" / "images"
            load_script("datasets/synthetic_pages.py").generate(
                scratch / "pages", pages=args.pages, seed=1
            )
        images = find_images(image_root)[: args.pages]
        cores = os.cpu_count() or 1
        one = pages_per_second(images, image_root, 1, 1, scratch)
        two = pages_per_second(images, image_root, 2, 1, scratch)
        default = pages_per_second(images, image_root, 1, cores, scratch)
        recall = word_recall(scratch)
    summary = {
        "benchmark": f"OCR (rapidocr), {len(images)} pages of {image_root.name}, "
        "2 workers vs 1 (1 thread each)",
        "device": f"cpu ({cores} cores)",
        "speedup": two / one,
        "pages_per_s_1_worker_1_thread": one,
        "pages_per_s_2_workers_1_thread": two,
        f"pages_per_s_1_worker_{cores}_threads": default,
        "word_recall_synthetic": recall,
        "targets": {"speedup": ">= 1.7"},
    }
    write_result(summary, args.out)


if __name__ == "__main__":
    main()
