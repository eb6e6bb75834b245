#!/usr/bin/env python
"""Export an image-only detector to TorchScript (detectron2's TracingAdapter + torch.jit.trace).

    python tools/export_torchscript.py \
        --config-file configs/publaynet/cascade_layoutlmv3_image.yaml \
        --sample-image page.png --output model.ts MODEL.WEIGHTS output/model_final.pth

The exported model takes a (3, H, W) page in ``INPUT.FORMAT``, resized as at test time
(``INPUT.MIN/MAX_SIZE_TEST``), and returns ``(pred_boxes (N, 4) XYXY in its pixels,
pred_classes (N,), scores (N,), image_size (2,))``.
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
from ditod.deploy.export import export_torchscript


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config-file", required=True)
    parser.add_argument("--sample-image", required=True, help="a page to trace the model on")
    parser.add_argument("--output", required=True, help="TorchScript file to write")
    add_debug_flag(parser)
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides: KEY VALUE …")
    args = parser.parse_args(argv)
    setup_logger(name="ditod")
    cfg = load_config(args.config_file, args.opts)
    cfg.MODEL.DEVICE = "cpu"
    cfg.freeze()
    if not cfg.MODEL.LAYOUTLMV3.IMAGE_ONLY:
        print("error: only image-only detectors (MODEL.LAYOUTLMV3.IMAGE_ONLY True) can be "
              "exported: a text-fused model needs OCR and tokenization outside the graph",
              file=sys.stderr)  # fmt: skip
        return 2
    model = build_model(cfg).eval()
    LayoutCheckpointer(model, complete=not cfg.MODEL.LAYOUTLMV3.ALLOW_RANDOM_INIT).load(
        cfg.MODEL.WEIGHTS
    )
    image = LayoutDatasetMapper(cfg, is_train=False)({"file_name": args.sample_image})["image"]
    export_torchscript(model, image, args.output)
    print(f"TorchScript model written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(run_tool(main))
