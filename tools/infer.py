#!/usr/bin/env python
"""Detect layout on page images, folders and PDFs with a trained detector.

    python tools/infer.py --config-file configs/publaynet/cascade_layoutlmv3_image.yaml \
        --input scans/ paper.pdf page.png --output out/ MODEL.WEIGHTS output/model_final.pth

Writes per page ``predictions/<name>.json`` (detections, and the regions in reading order with
their text), ``overlays/<name>.png`` and with ``--markdown`` ``markdown/<name>.md``, and for the run
``coco_instances_results.json`` + ``coco_pages.json``. Text-fused models read the OCR JSON under
``--ocr-root`` (``<ocr-root>/<name>.json``) or get it on the fly into ``<output>/ocr/``: a PDF
page's from its text layer when usable, else by OCR. A rerun into the same ``--output`` detects
only the pages not done yet. ``--ray-address`` runs detection (and OCR) on a Ray cluster.
Exit status 1 if any input or page was skipped (listed in ``<output>/failed.txt``).
"""

import argparse
import logging
import sys
from pathlib import Path

import ditod  # noqa: F401  (its shims must apply before detectron2 is imported)

# isort: split
from detectron2.utils.logger import setup_logger

from ditod.cli import add_debug_flag, run_tool
from ditod.config import load_config
from ditod.deploy.inference import PageOutputs, run_inference, run_inference_on_ray
from ditod.deploy.predictor import LayoutPredictor
from ditod.pages.ocr import (
    ENGINES,
    PAGE_TIMEOUT,
    EngineUnavailable,
    default_layout,
    write_failure_list,
)
from ditod.pages.page_inputs import collect_pages


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config-file", required=True)
    parser.add_argument("--input", nargs="+", required=True, help="images, PDFs, folders")
    parser.add_argument("--output", required=True, help="output folder")
    parser.add_argument("--device", help="cpu, cuda, cuda:1 … (default: MODEL.DEVICE)")
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--score-threshold", type=float, default=0.5)
    parser.add_argument("--dpi", type=float, default=150, help="PDF rendering resolution")
    parser.add_argument("--markdown", action="store_true", help="also write each page as "
                        "Markdown (text from the PDF text layer or OCR)")  # fmt: skip
    parser.add_argument("--ocr-root", help="existing OCR JSON, <ocr-root>/<page name>.json")
    parser.add_argument("--ocr-engine", choices=sorted(ENGINES), default="rapidocr")
    parser.add_argument("--ocr-workers", type=int, help="OCR processes (default: "
                        "{} here, of {} thread(s) each)".format(*default_layout()))  # fmt: skip
    parser.add_argument("--no-text-layer", action="store_true",
                        help="OCR PDF pages even when they have a usable text layer")  # fmt: skip
    parser.add_argument("--ray-address", help="run on a Ray cluster: auto (the one this machine "
                        "joined), ray://HOST:10001, or local")  # fmt: skip
    parser.add_argument("--ray-workers", type=int, help="detector actors on Ray (default: one "
                        "per GPU of the cluster, or per --ray-threads CPUs)")  # fmt: skip
    parser.add_argument("--ray-threads", type=int, default=1,
                        help="threads of each detector actor on a CPU model")  # fmt: skip
    parser.add_argument("--ocr-page-timeout", type=float, default=PAGE_TIMEOUT,
                        help="seconds OCR may take per page (0: no limit)")  # fmt: skip
    add_debug_flag(parser)
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides: KEY VALUE …")
    return parser.parse_args(argv)


def setup(args):
    cfg = load_config(args.config_file, args.opts)
    if args.device:
        cfg.MODEL.DEVICE = args.device
    cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST = args.score_threshold
    cfg.freeze()
    return cfg


def main(argv=None) -> int:
    args = parse_args(argv)
    setup_logger(name="ditod")
    setup_logger(name="detectron2", abbrev_name="d2")
    logger = logging.getLogger("ditod")
    cfg = setup(args)
    out = Path(args.output)
    pages, failed = collect_pages(args.input, out / "pages", dpi=args.dpi)
    ocr = {"ocr_root": args.ocr_root, "ocr_engine": args.ocr_engine,
           "ocr_page_timeout": args.ocr_page_timeout or None,
           "text_layer": not args.no_text_layer,
           "outputs": PageOutputs.from_config(cfg, markdown=args.markdown)}  # fmt: skip
    try:
        if args.ray_address:
            summary = run_inference_on_ray(cfg, pages, out, args.ray_address,
                                           workers=args.ray_workers, threads=args.ray_threads,
                                           **ocr)  # fmt: skip
        else:
            summary = run_inference(LayoutPredictor(cfg), pages, out, batch_size=args.batch_size,
                                    ocr_workers=args.ocr_workers, **ocr)  # fmt: skip
    except EngineUnavailable as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    failed += summary.failed
    failed_list = out / "failed.txt"
    write_failure_list(failed_list, failed)
    logger.info("%d pages done, %d done before, %d skipped; outputs in %s", summary.done,
                summary.skipped, len(failed), out)  # fmt: skip
    print(f"{summary.done} pages done, {summary.skipped} done by an earlier run, {len(failed)} "
          f"skipped; outputs in {out.resolve()}")  # fmt: skip
    if failed:
        print(f"skipped inputs and pages are listed in {failed_list}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(run_tool(main))
