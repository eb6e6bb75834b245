#!/usr/bin/env python
"""Plot a training run's metrics.json: loss, learning rate and AP curves, per-class AP bars.

python tools/plot_metrics.py output/publaynet/metrics.json [--out output/publaynet/plots]
"""

import argparse
import sys
from pathlib import Path

from ditod.plots import write_plots


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("metrics", help="metrics.json of a run (OUTPUT_DIR/metrics.json)")
    parser.add_argument("--out", help="output folder (default: plots/ next to metrics.json)")
    args = parser.parse_args(argv)
    metrics = Path(args.metrics)
    if not metrics.is_file():
        print(f"error: {metrics}: no such file", file=sys.stderr)
        return 2
    for path in write_plots(metrics, args.out or metrics.parent / "plots"):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
