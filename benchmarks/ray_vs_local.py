"""The same OCR run through the local process pool and through Ray (a local instance of the
machine's CPUs), in one run: identical JSON bytes, and pages/s of each.

    python benchmarks/ray_vs_local.py [--images DIR] [--pages 4] [--out F]

Both use the default layout's threads per engine; Ray's start-up (``ray.init``) is timed apart
from its pages/s, which counts from the submission of the first page (actors' engine loading
included, as the local pool's is).
"""

import argparse
import logging
import tempfile
from pathlib import Path

import ray
from _harness import stopwatch, write_result

from ditod.pages.image_io import find_images
from ditod.pages.ocr_runner import available_cores, default_layout, run_ocr

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT.parent / "shared" / "data" / "publaynet-samples"


def tree(folder: Path) -> dict:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*.json"))
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", default=str(SAMPLES), help="folder of page images")
    parser.add_argument("--pages", type=int, default=4)
    parser.add_argument("--out", default="benchmarks/results/ray_vs_local.json")
    args = parser.parse_args()
    root = Path(args.images)
    images = find_images(root)[: args.pages]
    cores = available_cores()
    threads = default_layout()[1]
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        with stopwatch() as local_run:
            run_ocr(images, root, scratch / "local", threads=threads)
        with stopwatch() as init:
            ray.init(num_cpus=cores, log_to_driver=False, logging_level=logging.WARNING)
        with stopwatch() as ray_run:
            run_ocr(images, root, scratch / "ray", threads=threads, ray_address="local")
        local_rate, init_s = len(images) / local_run.seconds, init.seconds
        ray_rate = len(images) / ray_run.seconds
        ray.shutdown()
        local, remote = tree(scratch / "local"), tree(scratch / "ray")
    summary = {
        "benchmark": f"OCR (rapidocr, {threads} threads per engine) of {len(images)} pages of "
        f"{root.name}: local pool vs Ray (local instance, {cores} CPUs)",
        "device": f"cpu ({cores} cores)",
        "identical_outputs": len(local) == len(images) and local == remote,
        "local_pages_per_s": local_rate,
        "ray_pages_per_s": ray_rate,
        "ray_init_s": init_s,
        "targets": {"identical_outputs": "true"},
    }
    write_result(summary, args.out)


if __name__ == "__main__":
    main()
