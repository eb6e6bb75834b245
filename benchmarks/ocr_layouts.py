"""OCR throughput (the default engine) of each workers × threads layout on this machine, in one
run, and whether the default layout (``ditod.pages.ocr_runner.default_layout``) is the fastest.

    python benchmarks/ocr_layouts.py [--images DIR] [--pages 6] [--out results.json]

Every layout OCRs the same pages through ``run_ocr`` (spawned worker processes, as the CLI runs
them; engine start-up included). ``--images`` defaults to the shared PubLayNet samples when
present, else synthetic pages.
"""

import argparse
import shutil
import tempfile
from pathlib import Path

from _harness import stopwatch, write_result

from ditod.data.synthetic import generate as generate_synthetic_pages
from ditod.pages.image_io import find_images
from ditod.pages.ocr_runner import available_cores, default_layout, run_ocr

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT.parent / "shared" / "data" / "publaynet-samples"


def layouts(cores: int) -> list[tuple[int, int]]:
    """Every (workers, threads) with workers × threads == cores, plus one single thread."""
    found = {(w, cores // w) for w in range(1, cores + 1) if cores % w == 0}
    return sorted(found | {(1, 1), default_layout(cores)})


def pages_per_second(images, image_root, workers, threads, scratch: Path) -> float:
    out = scratch / f"ocr_{workers}x{threads}"
    shutil.rmtree(out, ignore_errors=True)
    with stopwatch() as elapsed:  # a cold start of the pool is part of what a run costs
        summary = run_ocr(images, image_root, out, workers=workers, threads=threads)
    if summary.failed:
        raise RuntimeError(f"OCR failed on {summary.failed}")
    return len(images) / elapsed.seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", help="folder of page images")
    parser.add_argument("--pages", type=int, default=6, help="pages timed per layout")
    parser.add_argument("--out", default="benchmarks/results/ocr_layouts.json")
    args = parser.parse_args()
    cores = available_cores()
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        if args.images:
            image_root = Path(args.images)
        elif SAMPLES.is_dir():
            image_root = SAMPLES
        else:
            image_root = scratch / "pages" / "images"
            generate_synthetic_pages(scratch / "pages", pages=args.pages, seed=1)
        images = find_images(image_root)[: args.pages]
        speeds = {}
        for workers, threads in layouts(cores):
            speeds[f"{workers}x{threads}"] = pages_per_second(
                images, image_root, workers, threads, scratch
            )
            print(f"{workers} workers x {threads} threads: {speeds[f'{workers}x{threads}']:.3f}")
    default = "{}x{}".format(*default_layout(cores))
    fastest = max(speeds, key=speeds.get)
    summary = {
        "benchmark": f"OCR (rapidocr) layouts, workers x threads, {len(images)} pages of "
        f"{image_root.name}; default {default}",
        "device": f"cpu ({cores} cores)",
        **{f"pages_per_s_{layout}": speed for layout, speed in speeds.items()},
        "default_layout": default,
        "fastest_layout": fastest,
        "default_is_fastest": default == fastest,
        "default_vs_fastest": speeds[default] / speeds[fastest],
        "targets": {"default_is_fastest": "true"},
    }
    write_result(summary, args.out)


if __name__ == "__main__":
    main()
