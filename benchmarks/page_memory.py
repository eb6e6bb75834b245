"""Peak memory of ``tools/infer.py`` on very large pages, and whether the detections stay those
of a full-resolution read.

    python benchmarks/page_memory.py [--demo output/demo] [--out F]

Two pages, made from a held-out page of ``make demo`` (run it first) scaled up: 11000x16000 px
(176 megapixels, under Pillow's bomb limit) and an A4 scan at 600 dpi (4960x7016). Each runs
through ``tools/infer.py`` with the demo model (OCR included) in a fresh process; its peak RSS
is the process's ``VmHWM`` (its OCR workers': ``getrusage`` of its children, an upper bound: a
spawned worker's count starts from its parent's at the fork). The reference detections are those
of the same predictor reading the page at full size (``LayoutDatasetMapper.read_min_side`` off),
with the OCR JSON of the run: the share of its boxes found again (same class, IoU >= 0.9).
Targets: the 176-MP page <= 3 GB (21.9 GB before pages were decoded reduced), the A4 scan
<= 1.5 GB (5.0 GB).
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

import ditod  # noqa: F401  (its shims must apply before detectron2 is imported)

# isort: split
import torch
from _harness import ROOT, stopwatch, write_result
from detectron2.structures import Boxes, pairwise_iou
from PIL import Image

from ditod.config import load_config
from ditod.data.mapper import LayoutDatasetMapper
from ditod.deploy.predictor import LayoutPredictor
from ditod.deploy.run_outputs import page_detections

PAGES = {"page_176mp": (11000, 16000), "a4_600dpi": (4960, 7016)}
TARGET_GB = {"page_176mp": 3.0, "a4_600dpi": 1.5}
BEFORE_GB = {"page_176mp": 21.9, "a4_600dpi": 5.0}


def measure(argv: list[str]) -> None:
    """Run ``tools/infer.py argv`` in this process; print peak RSS in GB (self, children).
    ``--full-read`` first: the detector reads every pixel and the overlay is drawn at full size
    (how every page was read before)."""
    if argv[0] == "--full-read":
        argv = ["--overlay-max-side", "0", *argv[1:]]
        from_config = LayoutDatasetMapper.from_config.__func__

        def full_read(cls, cfg, is_train=True):
            return {**from_config(cls, cfg, is_train), "read_min_side": None}

        LayoutDatasetMapper.from_config = classmethod(full_read)
    sys.argv = ["infer.py", *argv]
    sys.path.insert(0, str(ROOT / "tools"))
    import infer

    status = infer.main(argv)
    # VmHWM: this process's own peak (ru_maxrss would carry the parent's over fork and exec)
    status_lines = Path("/proc/self/status").read_text().splitlines()
    peak_kb = next(int(line.split()[1]) for line in status_lines if line.startswith("VmHWM:"))
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
    print(json.dumps({"status": status, "peak_gb": peak_kb / 2**20, "children_peak_gb": children}))


def make_page(source: Path, size: tuple[int, int], path: Path) -> None:
    with Image.open(source) as page:
        page.convert("RGB").resize(size, Image.Resampling.BICUBIC).save(path)


def full_resolution_detections(config: Path, weights: Path, image: Path, ocr: Path) -> list:
    cfg = load_config(str(config), ["MODEL.WEIGHTS", str(weights)])
    cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST = 0.5
    predictor = LayoutPredictor(cfg)
    predictor.mapper.read_min_side = None  # every pixel decoded
    mapped = predictor.map_page(image, ocr)
    return page_detections(predictor([mapped])[0], predictor.class_names)


def matched(found: list, reference: list) -> float:
    """Share of the reference boxes found again (same class, IoU >= 0.9), one to one."""
    if not reference:
        return 1.0 if not found else 0.0
    if not found:
        return 0.0
    iou = pairwise_iou(
        Boxes(torch.tensor([d["bbox"] for d in reference])),
        Boxes(torch.tensor([d["bbox"] for d in found])),
    )
    used, hits = set(), 0
    for i, ref in enumerate(reference):
        for j in iou[i].argsort(descending=True).tolist():
            same = found[j]["category"] == ref["category"]
            if j not in used and iou[i, j] >= 0.9 and same:
                used.add(j)
                hits += 1
                break
    return hits / len(reference)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo", default=str(ROOT / "output" / "demo"))
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "page_memory.json"))
    parser.add_argument("--measure", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure is not None:
        return measure(args.measure)
    demo = Path(args.demo)
    config, weights = demo / "train" / "config.yaml", demo / "train" / "model_final.pth"
    if not weights.is_file():
        sys.exit(f"{weights} not found: run `make demo` first")
    source = sorted((demo / "held_out").rglob("*.png"))[0]
    summary = {
        "benchmark": "peak memory of tools/infer.py (demo model, OCR on the fly) on an "
        "11000x16000 page and an A4 scan at 600 dpi",
        "device": f"cpu ({os.cpu_count()} cores)",
    }
    targets = {}
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        for name, size in PAGES.items():
            image = scratch / f"{name}.png"
            make_page(source, size, image)
            out = scratch / f"out_{name}"
            command = [
                *(sys.executable, __file__, "--measure", "--config-file", str(config)),
                *("--input", str(image), "--output", str(out), "MODEL.WEIGHTS", str(weights)),
            ]
            with stopwatch() as elapsed:
                run = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
            if run.returncode != 0:
                sys.exit(f"{name}: tools/infer.py failed\n{run.stderr[-3000:]}")
            peak = json.loads(run.stdout.strip().splitlines()[-1])
            record = json.loads((out / "predictions" / f"{name}.json").read_text())
            reference = full_resolution_detections(
                config, weights, image, out / "ocr" / f"{name}.json"
            )
            with Image.open(out / "overlays" / f"{name}.png") as overlay:
                overlay_side = max(overlay.size)
            summary |= {
                f"peak_gb_{name}": round(peak["peak_gb"], 2),
                f"ocr_workers_peak_gb_{name}": round(peak["children_peak_gb"], 2),
                f"seconds_{name}": round(elapsed.seconds, 1),
                f"detections_{name}": len(record["detections"]),
                f"matched_full_resolution_{name}": round(
                    matched(record["detections"], reference), 3
                ),
                f"overlay_side_{name}": overlay_side,
            }
            targets[f"peak_gb_{name}"] = f"<= {TARGET_GB[name]} ({BEFORE_GB[name]} before)"
            targets[f"matched_full_resolution_{name}"] = ">= 0.9"
            if name == "a4_600dpi":  # the same run reading every pixel, as before (not the 176-MP
                # page: its full-size overlay alone took ~19 GB)
                full = subprocess.run(
                    [*command[:3], "--full-read", *command[3:-4], "--output", str(out) + "_full",
                     *command[-2:]],
                    capture_output=True, text=True, cwd=ROOT,
                )  # fmt: skip
                if full.returncode != 0:
                    sys.exit(f"{name} --full-read failed\n{full.stderr[-3000:]}")
                summary[f"full_read_peak_gb_{name}"] = round(
                    json.loads(full.stdout.strip().splitlines()[-1])["peak_gb"], 2
                )
    summary["targets"] = targets
    summary["targets_met"] = all(
        summary[f"peak_gb_{name}"] <= TARGET_GB[name]
        and summary[f"matched_full_resolution_{name}"] >= 0.9
        for name in PAGES
    )
    write_result(summary, args.out)


if __name__ == "__main__":
    main()
