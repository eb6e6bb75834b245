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
``--backend onnxruntime --model model.onnx`` runs a model exported by ``tools/export.py`` (its
config is in the file; ``--config-file`` is not needed). ``--precision`` (``TEST.PRECISION``:
auto, fp32, bf16, int8) is the arithmetic; ``auto`` picks what this device runs fastest at the
same accuracy and logs its choice (``--quantize int8`` is the old name of ``--precision int8``).
Exit status 1 if any input or page was skipped (listed in ``<output>/failed.txt``).
"""

import argparse
import logging
import sys
from functools import partial

import ditod  # noqa: F401  (its shims must apply before detectron2 is imported)

# isort: split
from detectron2.utils.logger import setup_logger

from ditod.cli import add_debug_flag, run_tool
from ditod.config import load_config
from ditod.deploy.inference import DEFAULT_BATCH_SIZE, run_inference, run_inference_on_ray
from ditod.deploy.onnx_predictor import OnnxLayoutPredictor, read_exported_config
from ditod.deploy.predictor import LayoutPredictor
from ditod.deploy.run_outputs import OVERLAY_MAX_SIDE, PageOutputs
from ditod.file_io import prepare_output_dir
from ditod.modeling.precision import PRECISIONS
from ditod.pages.engines import ENGINES, EngineUnavailable
from ditod.pages.image_io import max_page_pixels, set_max_page_megapixels
from ditod.pages.ocr_runner import PAGE_TIMEOUT, default_layout, write_failure_list
from ditod.pages.page_inputs import collect_pages

BACKENDS = ("pytorch", "onnxruntime")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--config-file",
        help="the model's config (not with --backend onnxruntime: the exported file holds its own)",
    )
    parser.add_argument("--backend", choices=BACKENDS, default="pytorch")
    parser.add_argument("--model", help="the exported .onnx file (--backend onnxruntime)")
    parser.add_argument(
        "--precision",
        choices=PRECISIONS,
        help="arithmetic (default: the "
        "config's TEST.PRECISION, auto: the fastest this device runs at the same "
        "accuracy; int8: int8 linear layers on CPU; bf16: PyTorch only)",
    )
    parser.add_argument("--quantize", choices=["int8"], help=argparse.SUPPRESS)  # old name
    parser.add_argument("--input", nargs="+", required=True, help="images, PDFs, folders")
    parser.add_argument("--output", required=True, help="output folder")
    parser.add_argument("--device", help="cpu, cuda, cuda:1 … (default: MODEL.DEVICE)")
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE)
    parser.add_argument(
        "--score-threshold",
        type=float,
        help="default 0.5; an exported model's is the one it was exported with",
    )
    parser.add_argument("--dpi", type=float, default=150, help="PDF rendering resolution")
    parser.add_argument(
        "--markdown",
        action="store_true",
        help="also write each page as Markdown (text from the PDF text layer or OCR)",
    )
    parser.add_argument(
        "--overlay-max-side",
        type=int,
        default=OVERLAY_MAX_SIDE,
        help="longer side of the overlay PNGs in pixels (0: the page's own size)",
    )
    parser.add_argument(
        "--max-megapixels",
        type=float,
        help="largest page read (default: Pillow's decompression-bomb limit, "
        f"{max_page_pixels() / 1e6:.0f} megapixels)",
    )
    parser.add_argument("--ocr-root", help="existing OCR JSON, <ocr-root>/<page name>.json")
    parser.add_argument("--ocr-engine", choices=sorted(ENGINES), default="rapidocr")
    parser.add_argument(
        "--ocr-workers",
        type=int,
        help="OCR processes (default: {} here, of {} thread(s) each)".format(*default_layout()),
    )
    parser.add_argument(
        "--no-text-layer",
        action="store_true",
        help="OCR PDF pages even when they have a usable text layer",
    )
    parser.add_argument(
        "--ray-address",
        help="run on a Ray cluster: auto (the one this machine joined), ray://HOST:10001, or local",
    )
    parser.add_argument(
        "--ray-workers",
        type=int,
        help="detector actors on Ray (default: one "
        "per GPU of the cluster, or per --ray-threads CPUs)",
    )
    parser.add_argument(
        "--ray-threads", type=int, default=1, help="threads of each detector actor on a CPU model"
    )
    parser.add_argument(
        "--ocr-page-timeout",
        type=float,
        default=PAGE_TIMEOUT,
        help="seconds OCR may take per page (0: no limit)",
    )
    add_debug_flag(parser)
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides: KEY VALUE …")
    args = parser.parse_args(argv)
    if args.quantize:
        if args.precision not in (None, args.quantize):
            parser.error(f"--quantize {args.quantize} and --precision {args.precision} disagree")
        args.precision = args.quantize
    if args.backend == "onnxruntime" and not args.model:
        parser.error("--backend onnxruntime needs --model (an .onnx file from tools/export.py)")
    if args.backend == "pytorch" and not args.config_file:
        parser.error("the following arguments are required: --config-file")
    if args.model and args.backend != "onnxruntime":
        parser.error(
            "--model is the exported file of --backend onnxruntime (a PyTorch "
            "checkpoint is MODEL.WEIGHTS)"
        )
    return args


def setup(args):
    """The config and a factory of the predictor (called here, or on each Ray actor)."""
    if args.backend == "onnxruntime":
        cfg = read_exported_config(args.model, args.opts)
        exported = cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST
        if args.score_threshold is not None and args.score_threshold != exported:
            raise ValueError(
                f"{args.model} was exported with score threshold {exported} (it is part of the "
                "graph): export it again with MODEL.ROI_HEADS.SCORE_THRESH_TEST "
                f"{args.score_threshold}, or leave --score-threshold out"
            )
        device = args.device or "cpu"
        cfg.MODEL.DEVICE = device
        cfg.freeze()
        return cfg, partial(
            OnnxLayoutPredictor,
            args.model,
            args.opts,
            device=device,
            precision=args.precision or "auto",
        )
    cfg = load_config(args.config_file, args.opts)
    if args.device:
        cfg.MODEL.DEVICE = args.device
    if args.precision:
        cfg.TEST.PRECISION = args.precision
    threshold = args.score_threshold
    cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST = 0.5 if threshold is None else threshold
    cfg.freeze()
    return cfg, partial(LayoutPredictor, cfg)


def main(argv=None) -> int:
    args = parse_args(argv)
    setup_logger(name="ditod")
    setup_logger(name="detectron2", abbrev_name="d2")
    logger = logging.getLogger("ditod")
    if args.max_megapixels:
        set_max_page_megapixels(args.max_megapixels)
    out = prepare_output_dir(args.output)
    cfg, make_predictor = setup(args)
    pages, failed = collect_pages(args.input, out / "pages", dpi=args.dpi)
    ocr = {
        "ocr_root": args.ocr_root,
        "ocr_engine": args.ocr_engine,
        "ocr_page_timeout": args.ocr_page_timeout or None,
        "text_layer": not args.no_text_layer,
        "outputs": PageOutputs.from_config(cfg, args.markdown, args.overlay_max_side),
    }
    try:
        if args.ray_address:
            summary = run_inference_on_ray(
                cfg,
                pages,
                out,
                args.ray_address,
                make_predictor,
                workers=args.ray_workers,
                threads=args.ray_threads,
                **ocr,
            )
        else:
            summary = run_inference(
                make_predictor(),
                pages,
                out,
                batch_size=args.batch_size,
                ocr_workers=args.ocr_workers,
                **ocr,
            )
    except EngineUnavailable as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    failed += summary.failed
    failed_list = out / "failed.txt"
    write_failure_list(failed_list, failed)
    logger.info(
        "%d pages done, %d done before, %d skipped; outputs in %s",
        summary.done,
        summary.skipped,
        len(failed),
        out,
    )
    print(
        f"{summary.done} pages done, {summary.skipped} done by an earlier run, {len(failed)} "
        f"skipped; outputs in {out.resolve()}"
    )
    if failed:
        print(f"skipped inputs and pages are listed in {failed_list}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(run_tool(main))
