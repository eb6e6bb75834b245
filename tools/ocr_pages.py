#!/usr/bin/env python
"""OCR page images into one JSON per page (the format the dataset mapper reads).

    python tools/ocr_pages.py data/publaynet/val                      # → data/publaynet/OCR/
    python tools/ocr_pages.py --coco data/CDLA/val.json --image-root data/CDLA/val
    python tools/ocr_pages.py IMAGES --out OCR_DIR --engine paddleocr --workers 4

Rerunning skips pages whose JSON exists and is valid. Degenerate images (shorter side under 32 px,
aspect ratio over 20:1) are skipped, and a page that runs past ``--page-timeout`` is stopped.
Exit status 1 if any page failed or was skipped (paths and reasons in ``<out>/ocr_failed.txt``),
2 if the engine is unavailable.
"""

import argparse
import json
import logging
import os
import sys
from pathlib import Path

import ditod  # noqa: F401  (its shims must apply before detectron2 is imported)

# isort: split
from ditod.cli import add_debug_flag, run_tool
from ditod.pages.ocr import ENGINES, PAGE_TIMEOUT, EngineUnavailable, find_images, run_ocr


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("images", nargs="?", help="folder of page images (searched recursively)")
    parser.add_argument("--coco", help="a COCO json: OCR its images (with --image-root)")
    parser.add_argument("--image-root", help="image folder of --coco")
    parser.add_argument("--out", help="output folder (default: the image folder's sibling OCR/)")
    parser.add_argument("--engine", choices=sorted(ENGINES), default="rapidocr")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--page-timeout", type=float, default=PAGE_TIMEOUT,
                        help="seconds a page may take; it is then stopped and listed as failed "
                        "(0: no limit)")  # fmt: skip
    parser.add_argument("--no-angle-cls", action="store_true", help="skip text-angle classifier")
    parser.add_argument("--lang", help="language (paddleocr: ch/en; tesseract: eng/chi_sim)")
    for name in ("det", "rec", "cls"):
        parser.add_argument(f"--{name}-model-dir", help=f"paddleocr {name} model folder")
    add_debug_flag(parser)
    args = parser.parse_args(argv)
    if bool(args.images) == bool(args.coco):
        parser.error("give an image folder or --coco JSON --image-root DIR")
    if args.coco and not args.image_root:
        parser.error("--coco needs --image-root")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    image_root = Path(args.images or args.image_root)
    if args.coco:
        with open(args.coco, encoding="utf-8") as f:
            images = [image_root / image["file_name"] for image in json.load(f)["images"]]
    else:
        images = find_images(image_root)
    out = Path(args.out) if args.out else image_root.parent / "OCR"
    options = {"use_angle_cls": not args.no_angle_cls}
    options.update({k: v for k, v in (("lang", args.lang), ("det_model_dir", args.det_model_dir),
                    ("rec_model_dir", args.rec_model_dir), ("cls_model_dir", args.cls_model_dir))
                    if v})  # fmt: skip
    try:
        summary = run_ocr(images, image_root, out, args.engine, args.workers,
                          page_timeout=args.page_timeout or None, **options)  # fmt: skip
    except EngineUnavailable as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"OCR into {out}: {summary.done} done, {summary.skipped} skipped (already valid), "
          f"{len(summary.failed)} failed")  # fmt: skip
    if summary.failed:
        print(f"failed pages are listed in {out / 'ocr_failed.txt'}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(run_tool(main))
