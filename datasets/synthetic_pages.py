#!/usr/bin/env python
"""Render synthetic document pages with known layout and text: COCO json + one OCR JSON per page.

    python datasets/synthetic_pages.py --out data/synthetic --pages 60 [--classes cdla|publaynet]
        [--language en|zh] [--columns 1 2] [--seed 0] [--split-val 0.2] [--captions below|apart]
        [--pdf] [--font FONT] [--style simple|document] [--layout coco|labelme]

A Chinese set in CDLA's own layout (labelme JSON beside each JPEG), to convert as CDLA is::

    python datasets/synthetic_pages.py --out data/CDLA --language zh --style document \
        --layout labelme --pages 200
    python datasets/cdla_to_coco.py --cdla-root data/CDLA

What is written, and how: :mod:`ditod.data.synthetic`.
"""

import argparse
import json
import sys

from ditod.data.synthetic import CAPTION_PLACEMENTS, LAYOUTS, STYLES, generate


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--pages", type=int, default=40)
    parser.add_argument("--classes", choices=["cdla", "publaynet"], default="cdla")
    parser.add_argument("--language", choices=["en", "zh"], default="en")
    parser.add_argument("--columns", type=int, nargs="+", choices=[1, 2], default=[1, 2])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--split-val", type=float, default=0.2)
    parser.add_argument("--font", help="a TrueType font to use instead of the default")
    parser.add_argument("--pdf", action="store_true", help="also write each page as a PDF")
    parser.add_argument(
        "--style",
        choices=STYLES,
        default="simple",
        help="simple pages, or pages that look like papers (fonts, plots, tables, scans)",
    )
    parser.add_argument(
        "--layout",
        choices=LAYOUTS,
        default="coco",
        help="COCO json + images/ + OCR/, or CDLA's labelme files (train/, val/, text/)",
    )
    parser.add_argument(
        "--captions",
        choices=CAPTION_PLACEMENTS,
        default="below",
        help="captions below their figure or table, or all apart from them",
    )
    args = parser.parse_args(argv)
    try:
        paths = generate(
            args.out,
            args.pages,
            args.classes,
            args.language,
            tuple(args.columns),
            args.seed,
            args.split_val,
            args.font,
            args.pdf,
            args.captions,
            args.style,
            args.layout,
        )
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(json.dumps({k: str(v) for k, v in paths.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
