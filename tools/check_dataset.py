#!/usr/bin/env python
"""Check layout datasets and their OCR JSON before training.

    python tools/check_dataset.py --config-file configs/cdla/cascade_layoutlmv3_text_gated.yaml
    python tools/check_dataset.py --config-file CONFIG --dataset cdla_val DATASETS.ROOT /data
    python tools/check_dataset.py data/publaynet/val.json data/publaynet/val [--ocr-root DIR]

With ``--config-file``, the datasets (default: the config's ``DATASETS.TRAIN`` and ``TEST``) are
checked as training and evaluation with that config would read them: OCR only for text models
and under its ``MISSING_OCR`` policy, its class count, the classes of its ``MODEL.WEIGHTS`` and
its tokenizer. Prints errors, warnings and a per-class count table; exits 1 on errors (what
training or evaluation would fail on), 0 with warnings only.
"""

import argparse
import sys

import ditod  # noqa: F401  (its shims must apply before detectron2 is imported)

# isort: split
from tabulate import tabulate

from ditod.cli import add_debug_flag, run_tool
from ditod.config import load_config
from ditod.data.dataset_check import check_config_datasets, check_dataset


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("json_file", nargs="?", help="a COCO json (without --config-file)")
    parser.add_argument("image_root", nargs="?", help="its image folder")
    parser.add_argument("--ocr-root", help="default: the image folder's sibling OCR/")
    parser.add_argument("--no-ocr", action="store_true", help="image-only dataset: skip OCR checks")
    parser.add_argument(
        "--masks",
        action="store_true",
        help="for a model with a mask head (MODEL.MASK_ON): every box needs a valid segmentation",
    )
    parser.add_argument("--config-file", help="check the datasets as this config reads them")
    parser.add_argument(
        "--dataset",
        action="append",
        dest="datasets",
        metavar="NAME",
        help="a dataset to check, repeatable (default: the config's)",
    )
    add_debug_flag(parser)
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides: KEY VALUE …")
    args = parser.parse_args(argv)
    if args.config_file:  # the positionals caught the first KEY VALUE overrides
        args.opts = [a for a in (args.json_file, args.image_root) if a is not None] + args.opts
    elif not (args.json_file and args.image_root):
        parser.error("give --config-file [--dataset NAME ...], or JSON_FILE IMAGE_ROOT")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.config_file:
        cfg = load_config(args.config_file, args.opts)
        names = args.datasets or [*cfg.DATASETS.TRAIN, *cfg.DATASETS.TEST]
        report = check_config_datasets(cfg, list(dict.fromkeys(names)))
    else:
        report = check_dataset(
            args.json_file, args.image_root, args.ocr_root, not args.no_ocr, mask_on=args.masks
        )
    for message in report.errors:
        print(f"ERROR   {message}")
    for message in report.warnings:
        print(f"WARNING {message}")
    if report.class_counts:
        print(tabulate(sorted(report.class_counts.items()), headers=["class", "boxes"]))
    print(f"{len(report.errors)} errors, {len(report.warnings)} warnings")
    return 1 if report.errors else 0


if __name__ == "__main__":
    sys.exit(run_tool(main))
