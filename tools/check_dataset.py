#!/usr/bin/env python
"""Check a COCO layout dataset and its OCR JSON before training.

    python tools/check_dataset.py data/publaynet/val.json data/publaynet/val [--ocr-root DIR]

Prints errors, warnings and a per-class count table; exits 1 on errors, 0 with warnings only.
"""

import argparse
import sys

import ditod  # noqa: F401  (its shims must apply before detectron2 is imported)

# isort: split
from tabulate import tabulate

from ditod.dataset_check import check_dataset


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("json_file")
    parser.add_argument("image_root")
    parser.add_argument("--ocr-root", help="default: the image folder's sibling OCR/")
    parser.add_argument("--no-ocr", action="store_true", help="image-only dataset: skip OCR checks")
    args = parser.parse_args(argv)
    report = check_dataset(args.json_file, args.image_root, args.ocr_root, not args.no_ocr)
    for message in report.errors:
        print(f"ERROR   {message}")
    for message in report.warnings:
        print(f"WARNING {message}")
    if report.class_counts:
        print(tabulate(sorted(report.class_counts.items()), headers=["class", "boxes"]))
    print(f"{len(report.errors)} errors, {len(report.warnings)} warnings")
    return 1 if report.errors else 0


if __name__ == "__main__":
    sys.exit(main())
