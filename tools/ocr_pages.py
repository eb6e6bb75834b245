#!/usr/bin/env python
"""Write the text of page images and PDFs: one OCR-format JSON per page (what the mapper reads).

    python tools/ocr_pages.py data/publaynet/val                      # → data/publaynet/OCR/
    python tools/ocr_pages.py --coco data/CDLA/val.json --image-root data/CDLA/val
    python tools/ocr_pages.py papers/ --out data/mine/OCR --pages-dir data/mine/images
    python tools/ocr_pages.py IMAGES --first-tokens 3                  # for TOKENS_PER_SEGMENT 3
    python tools/ocr_pages.py IMAGES --first-tokens 3 --tokenizer TOK  # Chinese: cut by its tokens
    python tools/ocr_pages.py IMAGES --ray-address auto                # on a Ray cluster

PDFs are rendered at ``--dpi`` into ``--pages-dir`` (``<pdf>/page-0001.png`` …); a page with a
usable text layer takes its text from it, the others are OCR'd. Rerunning skips pages whose JSON
exists and is valid. Degenerate images (shorter side under 32 px, aspect ratio over 20:1) are
skipped, and a page that runs past ``--page-timeout`` is stopped. Exit status 1 if any page has
no JSON (paths and reasons in ``<out>/ocr_failed.txt``), 2 if the engine is unavailable.
"""

import argparse
import json
import logging
import sys
from pathlib import Path

import ditod  # noqa: F401  (its shims must apply before detectron2 is imported)

# isort: split
from ditod.cli import add_debug_flag, run_tool
from ditod.file_io import prepare_output_dir
from ditod.pages.engines import ENGINES, EngineUnavailable
from ditod.pages.image_io import max_page_pixels, set_max_page_megapixels
from ditod.pages.ocr_runner import (
    PAGE_TIMEOUT,
    PageJob,
    default_layout,
    run_ocr_jobs,
    write_failure_list,
)
from ditod.pages.page_inputs import collect_pages


def parse_args(argv=None):
    workers, threads = default_layout()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "images", nargs="?", help="folder of page images and/or PDFs (searched recursively)"
    )
    parser.add_argument("--coco", help="a COCO json: OCR its images (with --image-root)")
    parser.add_argument("--image-root", help="image folder of --coco")
    parser.add_argument("--out", help="output folder (default: the image folder's sibling OCR/)")
    parser.add_argument(
        "--pages-dir", help="where PDF pages are rendered (default: the folder's sibling pages/)"
    )
    parser.add_argument("--dpi", type=float, default=150, help="PDF rendering resolution")
    parser.add_argument(
        "--no-text-layer",
        action="store_true",
        help="OCR PDF pages even when they have a usable text layer",
    )
    parser.add_argument("--engine", choices=sorted(ENGINES), default="rapidocr")
    parser.add_argument(
        "--workers",
        type=int,
        help=f"engine processes (default here: {workers}; "
        "with --ray-address: as many as the cluster holds)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        help=f"threads per engine (default: the cores shared between the workers, here {threads})",
    )
    parser.add_argument(
        "--first-tokens",
        type=int,
        default=0,
        metavar="K",
        help="recognise each line only far enough for its first K tokens (for "
        "models with TOKENS_PER_SEGMENT <= K; rapidocr only)",
    )
    parser.add_argument(
        "--tokenizer",
        help="with --first-tokens: the model's tokenizer folder (MODEL.LAYOUTLMV3.TEXT."
        "TOKENIZER); Chinese/Japanese lines are then cut where their first K tokens end, "
        "checked by tokenizing each read, instead of at 3 characters a token",
    )
    parser.add_argument(
        "--ray-address",
        help="run OCR on a Ray cluster: auto (the one this "
        "machine joined), ray://HOST:10001, or local",
    )
    parser.add_argument(
        "--page-timeout",
        type=float,
        default=PAGE_TIMEOUT,
        help="seconds a page may take; it is then stopped and listed as failed (0: no limit)",
    )
    parser.add_argument(
        "--max-megapixels",
        type=float,
        help="largest page read (default: Pillow's decompression-bomb limit, "
        f"{max_page_pixels() / 1e6:.0f} megapixels)",
    )
    parser.add_argument("--no-angle-cls", action="store_true", help="skip text-angle classifier")
    parser.add_argument("--lang", help="language (paddleocr: ch/en; tesseract: eng/chi_sim)")
    for name in ("det", "rec", "cls"):
        parser.add_argument(f"--{name}-model-dir", help=f"paddleocr {name} model folder")
    add_debug_flag(parser)
    args = parser.parse_args(argv)
    if bool(args.images) == bool(args.coco):
        parser.error("give a folder of images/PDFs or --coco JSON --image-root DIR")
    if args.coco and not args.image_root:
        parser.error("--coco needs --image-root")
    if args.first_tokens < 0:
        parser.error("--first-tokens must be >= 0")
    if args.tokenizer and not args.first_tokens:
        parser.error("--tokenizer is for --first-tokens K (where the model's first K tokens end)")
    return args


def collect_jobs(args, out: Path):
    """The pages to write text for, and ``(source, error)`` of inputs that yield no page."""
    if args.coco:
        root = Path(args.image_root)
        with open(args.coco, encoding="utf-8") as f:
            names = [image["file_name"] for image in json.load(f)["images"]]
        jobs = [PageJob(root / n, out / Path(n).with_suffix(".json")) for n in names]
        return jobs, []
    folder = Path(args.images)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: folder not found")
    pages_dir = Path(args.pages_dir) if args.pages_dir else folder.parent / "pages"
    if any(folder.rglob("*.pdf")) or any(folder.rglob("*.tif*")):  # pages may be written there
        prepare_output_dir(pages_dir, "pages folder")
    pages, failed = collect_pages([folder], pages_dir, dpi=args.dpi)
    jobs = [
        PageJob(page.image, out / f"{page.name}.json", page.pdf, page.page_index) for page in pages
    ]
    return jobs, failed


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    if args.max_megapixels:
        set_max_page_megapixels(args.max_megapixels)
    root = Path(args.images or args.image_root)
    out = prepare_output_dir(Path(args.out) if args.out else root.parent / "OCR")
    jobs, failed = collect_jobs(args, out)
    options = {"use_angle_cls": not args.no_angle_cls}
    options.update(
        {
            k: v
            for k, v in (
                ("lang", args.lang),
                ("det_model_dir", args.det_model_dir),
                ("rec_model_dir", args.rec_model_dir),
                ("cls_model_dir", args.cls_model_dir),
                ("threads", args.threads),
                ("first_tokens", args.first_tokens),
                ("tokenizer", args.tokenizer),
            )
            if v
        }
    )
    failed_list = out / "ocr_failed.txt"
    try:
        summary = run_ocr_jobs(
            jobs,
            failed_list,
            args.engine,
            args.workers,
            page_timeout=args.page_timeout or None,
            text_layer=not args.no_text_layer,
            ray_address=args.ray_address,
            **options,
        )
    except EngineUnavailable as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    failed += summary.failed
    write_failure_list(failed_list, failed)
    print(
        f"text into {out}: {summary.text_layer} from PDF text layers, {summary.done} OCR'd, "
        f"{summary.skipped} skipped (already valid), {len(failed)} failed"
    )
    if summary.fallback:
        print(f"{len(summary.fallback)} PDF pages were OCR'd for want of a usable text layer")
    if failed:
        print(f"failed pages are listed in {failed_list}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(run_tool(main))
