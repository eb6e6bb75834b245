#!/usr/bin/env python
"""Write born-digital PDFs with what real PDFs bring to a text-layer reader, with their truth.

    python datasets/pdf_cases.py OUT_DIR

What is written: :mod:`ditod.data.pdf_cases`.
"""

import argparse
import sys

from ditod.data.pdf_cases import write_cases


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir")
    args = parser.parse_args(argv)
    truth = write_cases(args.out_dir)
    print(f"{len(truth)} cases in {args.out_dir}: {', '.join(truth)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
