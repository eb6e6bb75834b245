"""Detection throughput on CPU by batch size (1, 4, 8) in one run, and whether
``tools/infer.py``'s default ``--batch-size`` is the fastest.

    python benchmarks/inference_batch.py [--pages 8] [--config F] [--out F]

The base-size image-only PubLayNet detector (random weights: speed does not depend on them) on
synthetic pages, each mapped as inference maps it (``INPUT.MIN_SIZE_TEST`` 800); every batch
size runs the same pages under ``torch.inference_mode``, timed by ``torch.utils.benchmark``.
"""

import argparse
import tempfile
from pathlib import Path

import ditod  # noqa: F401  (its shims must apply before detectron2 is imported)

# isort: split
import torch
from _harness import ROOT, measure, write_result
from detectron2.modeling import build_model

from ditod.config import load_config
from ditod.data.mapper import LayoutDatasetMapper
from ditod.data.synthetic import generate as generate_synthetic_pages
from ditod.deploy.inference import DEFAULT_BATCH_SIZE
from ditod.pages.image_io import find_images
from ditod.pages.ocr_runner import available_cores

BATCHES = (1, 4, 8)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=8)
    parser.add_argument("--config", default="configs/publaynet/cascade_layoutlmv3_image.yaml")
    parser.add_argument("--out", default="benchmarks/results/inference_batch.json")
    args = parser.parse_args()
    # the SIZE preset, no pretrained weights read (speed does not depend on them)
    opts = ["MODEL.DEVICE", "cpu", "MODEL.LAYOUTLMV3.CONFIG", "", "MODEL.LAYOUTLMV3.SIZE", "base"]
    cfg = load_config(str(ROOT / args.config), opts)
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    mapper = LayoutDatasetMapper(cfg, is_train=False)
    default = DEFAULT_BATCH_SIZE  # tools/infer.py's --batch-size
    with tempfile.TemporaryDirectory() as scratch:
        generate_synthetic_pages(scratch, pages=args.pages, seed=2, split_val=0.0)
        inputs = [mapper({"file_name": str(p)}) for p in find_images(Path(scratch) / "images")]
    speeds = {}
    with torch.inference_mode():
        for batch in BATCHES:

            def run_all(batch=batch):
                for first in range(0, len(inputs), batch):
                    model(inputs[first : first + batch])

            speeds[batch] = len(inputs) / measure(run_all, 0.0).median
            print(f"batch {batch}: {speeds[batch]:.3f} pages/s")
    fastest = max(speeds, key=speeds.get)
    height, width = inputs[0]["image"].shape[1:]
    summary = {
        "benchmark": f"detection pages/s by batch size, base image-only detector "
        f"({Path(args.config).name}), {len(inputs)} pages at {width}x{height}, "
        f"{torch.get_num_threads()} threads",
        "device": f"cpu ({available_cores()} cores)",
        **{f"pages_per_s_batch_{b}": s for b, s in speeds.items()},
        "fastest_batch": fastest,
        "default_batch": default,
        "default_is_fastest": default == fastest,
        "targets": {"default_is_fastest": "true"},
    }
    write_result(summary, args.out)


if __name__ == "__main__":
    main()
