"""`make demo` on real pages: what its overlays show on the 20 real PubLayNet pages of
``../shared/data/publaynet-samples`` and on its synthetic held-out pages, its validation AP and
its minutes, in one result file.

    python benchmarks/demo_real_pages.py [--demo output/demo] [--out F]   # runs the demo
    python benchmarks/demo_real_pages.py --demo output/demo --collected   # reads a finished run

The demo is run as `make demo` runs it (``tools/demo.py``, its config's defaults);
``--collected`` reads ``heldout_match.json`` and ``real_match.json`` of a run that has finished:
its minutes are the run's own (page rendering and the real pages' OCR included when that run
did them), its machine as that run recorded it.
"""

import argparse
import json
import subprocess
import sys
from pathlib import Path

from _harness import ROOT

from ditod.file_io import write_json_atomic

RUN_FILES = ("heldout_match.json", "real_match.json")
CLASSES_TARGET = "== 5"  # every PubLayNet class found on the real pages


def targets(held_out: dict, real: dict) -> dict:
    """The targets the demo's two result files name, under this file's keys."""
    held_out_targets = {
        key if key == "minutes" else f"heldout_{key}": value
        for key, value in held_out["targets"].items()
    }
    return {**real["targets"], "classes_found": CLASSES_TARGET, **held_out_targets}


def summary(demo: Path) -> dict:
    """The real-page and held-out numbers of the demo run in ``demo``."""
    held_out, real = (json.loads((demo / name).read_text()) for name in RUN_FILES)
    real_classes = {k: v for k, v in real["per_class"].items() if v["gt"]}
    return {
        "benchmark": "make demo (tools/demo.py: CDLA classes, the tiny text-fused detector trained "
        "from scratch on synthetic document pages) on the 20 real PubLayNet pages of "
        "shared/data/publaynet-samples (193 blocks; found: the right class at IoU >= 0.5; false: "
        "shown boxes, score >= 0.5, that find none; CDLA classes counted as PubLayNet's, headers "
        "and footers not counted) and on its 8 synthetic held-out pages",
        "device": held_out["device"],
        "matched_fraction": real["matched_fraction"],
        "false_fraction": real["false_fraction"],
        "pages_without_detection": real["pages_without_detection"],
        "classes_found": len(real["classes_found"]),
        "heldout_matched_fraction": held_out["matched_fraction"],
        "heldout_false_fraction": held_out["false_fraction"],
        "val_ap": held_out["val_ap"],
        "minutes": held_out["minutes"],
        "pages_reused": held_out.get("pages_reused", False),  # rendering and OCR not timed
        "real_per_class": {k: f"{v['matched']}/{v['gt']}" for k, v in real_classes.items()},
        "real": {k: real[k] for k in ("gt", "matched", "shown", "false")},
        "heldout": {k: held_out[k] for k in ("gt", "matched", "shown", "false")},
        "targets": targets(held_out, real),
        "machine": held_out["machine"],  # as the run recorded it when it finished
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo", type=Path, default=ROOT / "output" / "demo")
    parser.add_argument("--collected", action="store_true", help="read a finished run")
    parser.add_argument("--out", default=ROOT / "benchmarks" / "results" / "demo_real_pages.json")
    args = parser.parse_args()
    if not args.collected:
        command = [sys.executable, "tools/demo.py", "--output-dir", str(args.demo)]
        subprocess.run(command, cwd=ROOT, check=True)
    result = summary(args.demo.resolve())
    write_json_atomic(args.out, result, indent=2)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
