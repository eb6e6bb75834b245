#!/usr/bin/env python
"""Export a trained detector, image-only or text-fused, to ONNX.

    python tools/export.py --config-file configs/publaynet/cascade_layoutlmv3_image.yaml \
        --sample-image page.png --output model.onnx MODEL.WEIGHTS output/model_final.pth
    python tools/export.py --config-file configs/publaynet/cascade_layoutlmv3_text_gated.yaml \
        --sample-image page.png --sample-ocr page.json --quantize int8 --output model.int8.onnx \
        MODEL.WEIGHTS output/model_final.pth

The model takes one page: ``image`` (3, H, W) float in ``INPUT.FORMAT``, resized as at test time
(any size), and for a text-fused model ``input_ids`` (L,) and ``bbox`` (L, 4) as the test-time
mapper makes them (any L); it returns ``boxes`` (N, 4) XYXY in the image's pixels, ``classes``
and ``scores``. The file holds the config and class names: ``tools/infer.py --backend onnxruntime
--model model.onnx`` runs it. ``--quantize int8`` stores the linear layers' weights in int8.
"""

import argparse
import sys

import ditod  # noqa: F401  (its shims must apply before detectron2 is imported)

# isort: split
from detectron2.modeling import build_model
from detectron2.utils.logger import setup_logger

from ditod import LayoutCheckpointer
from ditod.cli import add_debug_flag, run_tool
from ditod.config import load_config
from ditod.data.mapper import LayoutDatasetMapper
from ditod.deploy.export import export_model


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config-file", required=True)
    parser.add_argument("--sample-image", required=True, help="a page to trace the model on")
    parser.add_argument("--sample-ocr", help="its OCR JSON (needed for a text-fused model)")
    parser.add_argument("--output", required=True, help="the .onnx file to write")
    parser.add_argument("--quantize", choices=["int8"], help="int8 weights of the linear layers")
    add_debug_flag(parser)
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides: KEY VALUE …")
    args = parser.parse_args(argv)
    setup_logger(name="ditod")
    cfg = load_config(args.config_file, args.opts)
    cfg.MODEL.DEVICE = "cpu"
    cfg.freeze()
    model = build_model(cfg).eval()
    checkpoint = LayoutCheckpointer(model, complete=not cfg.MODEL.LAYOUTLMV3.ALLOW_RANDOM_INIT)
    class_names = checkpoint.load(cfg.MODEL.WEIGHTS).get("class_names") or ()
    if getattr(model, "use_text", False) and not args.sample_ocr:
        print(
            "error: a text-fused model is traced on a page with text: give --sample-ocr "
            "(the sample page's OCR JSON)",
            file=sys.stderr,
        )
        return 2
    page = {"file_name": args.sample_image}
    if args.sample_ocr:
        page["ocr_file"] = args.sample_ocr
    page = LayoutDatasetMapper(cfg, is_train=False)(page)
    export_model(
        model,
        page,
        args.output,
        config=cfg.dump(),
        class_names=class_names,
        quantize=args.quantize,
    )
    print(f"ONNX model written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(run_tool(main))
