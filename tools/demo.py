#!/usr/bin/env python
"""The whole pipeline on synthetic pages, offline, on CPU, into one output folder.

    python tools/demo.py --output-dir output/demo [--pages 160] [--iterations N] [KEY VALUE ...]
    python tools/demo.py --language zh --output-dir output/demo-zh     # Chinese, as CDLA

1. renders synthetic pages with known layout and text, the 10 CDLA classes (``--style
   document``, the default: pages that look like papers, :mod:`ditod.data.document_pages`;
   ``simple``: the look-alike captions pages of the fusion ablation), and a few held-out pages;
   pages and their OCR are kept for the next run with the same settings. ``--language zh``:
   Chinese pages written as CDLA ships them (labelme JSON beside each JPEG), converted with
   ``datasets/cdla_to_coco.py`` and OCR'd with the default engine, as a CDLA user does;
2. OCRs the held-out pages with the default engine (``tools/ocr_pages.py``);
3. trains a tokenizer on the training pages' text: byte-level BPE (English), XLM-R-style
   sentencepiece (Chinese, the layoutlmv3-base-chinese kind);
4. trains the tiny text-fused detector (``tools/train_net.py``; English in bf16 where the CPU
   has bf16 units, :func:`training_amp`) and evaluates it on the
   validation pages (per-class AP table);
5. detects on the held-out pages from their OCR (``tools/infer.py``): overlays, JSON, COCO,
   Markdown; and counts what the overlays show against the pages' truth (``heldout_match.json``:
   ``matched_fraction`` of the blocks found, ``false_fraction`` of the boxes shown, ``minutes``);
6. detects on real pages (``--real-pages``: a folder of page images and one COCO JSON of their
   blocks, by default the 20 PubLayNet pages of ``../shared/data/publaynet-samples`` where
   present; English only) with OCR on the fly, and counts the same way (``real_match.json``;
   CDLA classes counted as PubLayNet's, headers and footers not counted: ``CDLA_AS_PUBLAYNET``);
7. plots the loss curve and the per-class AP (``tools/plot_metrics.py``).

Each step runs the command a user would run, printed before it runs; the terminal shows the
steps, progress bars and results, the commands' full logs go to ``<output-dir>/demo.log``.
"""

import argparse
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from ditod.data import synthetic
from ditod.data.class_sets import CDLA_AS_PUBLAYNET, PUBLAYNET_CLASSES
from ditod.engine.page_match import match_predictions
from ditod.file_io import write_json_atomic
from ditod.machine import machine
from ditod.modeling.precision import choose_precision
from ditod.pages.ocr_json import ocr_folder_lines
from ditod.plots import read_metrics
from layoutlmv3.tokenization import train_bpe_tokenizer, train_sentencepiece_tokenizer

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "demo" / "cascade_layoutlmv3_tiny_synthetic.yaml"
CONFIG_ZH = ROOT / "configs" / "demo" / "cascade_layoutlmv3_tiny_cdla.yaml"
REAL_PAGES = ROOT.parent / "shared" / "data" / "publaynet-samples"
SHOWN_SCORE = 0.5  # the overlays' threshold: what a user sees


def run(step: str, command: list, log: Path) -> None:
    """Run one pipeline command from the repository root: its log (stdout, the detectron2 log
    with the model dump) goes to ``log``, its progress bars and warnings (stderr) to the terminal
    and to ``log``; stop the demo, with the log's last lines, if it fails."""
    print(f"\n== {step}\n$ {shlex.join(map(str, command))}", flush=True)
    start = time.perf_counter()
    with open(log, "ab") as out:
        out.write(f"\n== {step}\n$ {shlex.join(map(str, command))}\n".encode())
        out.flush()
        env = {**os.environ, "NO_COLOR": "1"}  # plain text in the log file
        process = subprocess.Popen(
            [str(c) for c in command], cwd=ROOT, stdout=out, stderr=subprocess.PIPE, env=env
        )
        for chunk in iter(lambda: os.read(process.stderr.fileno(), 4096), b""):
            sys.stderr.buffer.write(chunk)
            sys.stderr.flush()
            out.write(chunk)
        process.wait()
    if process.returncode != 0:
        tail = log.read_text(encoding="utf-8", errors="replace").splitlines()[-30:]
        print("\n".join(tail), file=sys.stderr)
        raise SystemExit(
            f"demo: '{step}' failed (exit status {process.returncode}); its log: {log}"
        )
    print(f"== {step}: {time.perf_counter() - start:.0f} s", flush=True)


def rendered_with(out: Path) -> dict | None:
    """The settings the pages in ``out`` were rendered and OCR'd with (None if none were)."""
    try:
        return json.loads((out / "pages.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def real_pages(folder: str) -> tuple[Path, list[Path]] | None:
    """``(COCO JSON, page images)`` of the real pages in ``folder``; None (said) when there is
    no such folder or it holds no COCO JSON."""
    if not folder:
        return None
    root = Path(folder)
    annotations = sorted(root.glob("*.json")) if root.is_dir() else []
    if not annotations:
        print(f"== no real pages: {root} is not a folder with a COCO JSON; skipped")
        return None
    coco = json.loads(annotations[0].read_text(encoding="utf-8"))
    return annotations[0], [root / image["file_name"] for image in coco["images"]]


def final_ap(metrics_file: Path) -> dict:
    """The last evaluation's ``bbox/*`` numbers from ``metrics.json``."""
    evaluations = [record for record in read_metrics(metrics_file) if "bbox/AP" in record]
    if not evaluations:
        raise SystemExit(f"demo: no evaluation in {metrics_file}")
    return {k.removeprefix("bbox/"): v for k, v in evaluations[-1].items() if k.startswith("bbox/")}


@dataclass
class TrainingSet:
    """What the training step is given: the config, the ``KEY VALUE`` options that declare the
    datasets, and the tokenizer folder."""

    config: Path
    datasets: list
    tokenizer: Path


def english_pages(args, out: Path, reuse: bool, log: Path) -> TrainingSet:
    """Synthetic English pages with their exact text as the training set (``data/``), declared
    as ``DATASETS.EXTRA``; a byte-level BPE trained on their text."""
    data = out / "data"
    if not reuse:
        synthetic.generate(data, args.pages, classes=args.classes, seed=args.seed, style=args.style)
    print("\n== tokenizer: byte-level BPE on the training pages' text", flush=True)
    tokenizer = train_bpe_tokenizer(
        ocr_folder_lines(data / "OCR"), out / "tokenizer", vocab_size=2000
    )
    datasets = [
        [f"synthetic_{split}", str(data / f"{split}.json"), str(data / "images"), str(data / "OCR")]
        for split in ("train", "val")
    ]
    return TrainingSet(CONFIG, ["DATASETS.EXTRA", json.dumps(datasets)], tokenizer)


def chinese_pages(args, out: Path, reuse: bool, log: Path) -> TrainingSet:
    """Synthetic Chinese pages the way a CDLA user has them (``data/CDLA/{train,val}``: JPEGs
    with labelme JSON), converted to COCO and OCR'd by the commands a user runs, and read as the
    built-in ``cdla_train`` / ``cdla_val`` under ``DATASETS.ROOT``; an XLM-R-style
    sentencepiece model trained on the OCR text."""
    python, cdla = sys.executable, out / "data" / "CDLA"
    if not reuse:
        synthetic.generate(
            cdla, args.pages, language="zh", seed=args.seed, style=args.style, layout="labelme"
        )
    run(
        "labelme to COCO",
        [python, "datasets/cdla_to_coco.py", "--cdla-root", cdla],
        log,
    )
    for split in ("train", "val"):
        run(  # resumable: a rerun reads the pages' OCR JSON of an earlier run
            f"OCR of the {split} pages",
            [python, "tools/ocr_pages.py", cdla / split, "--out", cdla / "OCR"],
            log,
        )
    print("\n== tokenizer: sentencepiece (XLM-R kind) on the training pages' OCR text", flush=True)
    tokenizer = train_sentencepiece_tokenizer(
        ocr_folder_lines(cdla / "OCR"), out / "tokenizer", vocab_size=2000
    )
    return TrainingSet(CONFIG_ZH, ["DATASETS.ROOT", str(out / "data")], tokenizer)


def training_amp(opts: list[str], language: str = "en") -> tuple[str | None, str]:
    """The autocast dtype the demo trains in (``""``: fp32; None: as ``opts`` set
    ``SOLVER.AMP``) and why. English: bfloat16 where the CPU has bf16 units that a probe
    confirms (what ``TEST.PRECISION auto`` picks for inference; 0.27 instead of 0.32 s an
    iteration on an AMD EPYC Zen 4, val. AP 34.7 -> 35.9, real blocks found 38% -> 42%).
    Chinese: fp32, where bf16 did not hold (val. AP 47.9 -> 43.5, held-out found 59% -> 54%;
    one run each)."""
    if any(key.startswith("SOLVER.AMP.") for key in opts[::2]):
        return None, "SOLVER.AMP as given"
    if language == "zh":
        return "", "bf16 lost the Chinese demo 4 AP in the one run measured"
    choice = choose_precision("auto", "cpu")
    return ("bfloat16" if choice.precision == "bf16" else ""), choice.reason


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", default="output/demo")
    parser.add_argument(
        "--pages",
        type=int,
        default=160,
        help="training + validation pages",
    )
    parser.add_argument("--held-out", type=int, default=8, help="pages OCR'd and detected on")
    parser.add_argument("--iterations", type=int, help="default: the config's SOLVER.MAX_ITER")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--language",
        choices=["en", "zh"],
        default="en",
        help="English pages, or Chinese pages in CDLA's layout, tokenized as "
        "layoutlmv3-base-chinese does",
    )
    parser.add_argument(
        "--style",
        choices=synthetic.STYLES,
        default="document",
        help="pages that look like papers (the default), or the simple pages of the fusion "
        "ablation (their held-out pages are easy; real pages are not like them)",
    )
    parser.add_argument(
        "--classes",
        choices=["cdla", "publaynet"],
        default="cdla",
        help="the classes the English pages are labelled with: CDLA's 10 or PubLayNet's 5 "
        "(captions, equations and references are text; headers and footers unmarked); "
        "Chinese pages are CDLA's",
    )
    parser.add_argument(
        "--real-pages",
        help="folder of real page images with one COCO JSON of their blocks ('' to skip; "
        f"default for English: {REAL_PAGES})",
    )
    parser.add_argument(
        "opts",
        nargs=argparse.REMAINDER,
        help="config overrides (KEY VALUE ...) for training and inference",
    )
    args = parser.parse_args(argv)
    if args.language == "zh" and args.classes != "cdla":
        parser.error("--classes publaynet is for English pages; Chinese pages are CDLA's")
    if args.real_pages is None:
        args.real_pages = str(REAL_PAGES) if args.language == "en" else ""
    out = Path(args.output_dir).resolve()
    keys = ("pages", "held_out", "seed", "style", "language", "classes")
    settings = {k: getattr(args, k) for k in keys}
    settings["generator"] = synthetic.generator_fingerprint()  # not pages of an older version
    reuse = rendered_with(out) == settings  # pages (and their OCR) of an earlier run
    kept = ("data", "held_out", "real_ocr") if reuse else ("real_ocr",)
    for previous in ("data", "held_out", "tokenizer", "train", "inference", "real", "plots"):
        if previous not in kept:
            shutil.rmtree(out / previous, ignore_errors=True)  # a rerun starts clean
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    python = sys.executable
    log = out / "demo.log"
    log.unlink(missing_ok=True)
    print(f"the commands' full logs: {log}")

    language = {"en": "English", "zh": "Chinese"}[args.language]
    print(
        f"== synthetic {language} pages ({args.style}): {args.pages} for training/validation, "
        f"{args.held_out} held out{' (rendered by an earlier run)' if reuse else ''}",
        flush=True,
    )
    held_out = out / "held_out"
    if reuse:
        held_out_truth = {split: held_out / f"{split}.json" for split in ("train", "val")}
    else:
        (out / "pages.json").unlink(missing_ok=True)
        held_out_truth = synthetic.generate(
            held_out,
            args.held_out,
            classes=args.classes,
            language=args.language,
            seed=args.seed + 1000,
            style=args.style,
        )
        # the OCR step below has to read the held-out pages itself
        (held_out / "OCR").rename(held_out / "OCR_exact")
    prepare = english_pages if args.language == "en" else chinese_pages
    training = prepare(args, out, reuse, log)
    run(
        "OCR of the held-out pages",
        [python, "tools/ocr_pages.py", held_out / "images", "--out", held_out / "OCR"],
        log,
    )
    write_json_atomic(out / "pages.json", settings)

    classes = (
        ["MODEL.ROI_HEADS.NUM_CLASSES", len(PUBLAYNET_CLASSES)]
        if args.classes == "publaynet"
        else []
    )
    common = ["MODEL.LAYOUTLMV3.TEXT.TOKENIZER", training.tokenizer, *classes, *args.opts]
    amp, amp_reason = training_amp(args.opts, args.language)
    shown = "as given" if amp is None else amp or "fp32"
    print(f"== training precision: {shown} ({amp_reason})", flush=True)
    train_dir = out / "train"
    run(
        "training + evaluation",
        [
            python,
            "tools/train_net.py",
            "--config-file",
            training.config,
            *common,
            *training.datasets,
            "OUTPUT_DIR",
            train_dir,
            *(["SOLVER.MAX_ITER", args.iterations] if args.iterations else []),
            *(["SOLVER.AMP.ENABLED", "True", "SOLVER.AMP.DTYPE", amp] if amp else []),
        ],
        log,
    )
    run(
        "inference on the held-out pages",
        [
            python,
            "tools/infer.py",
            "--config-file",
            training.config,
            "--input",
            held_out / "images",
            "--ocr-root",
            held_out / "OCR",
            "--output",
            out / "inference",
            "--score-threshold",
            SHOWN_SCORE,
            "--markdown",
            *common,
            "MODEL.WEIGHTS",
            train_dir / "model_final.pth",
        ],
        log,
    )
    real = real_pages(args.real_pages)
    if real:
        real_ocr = out / "real_ocr" / hashlib.sha1(str(real[0]).encode()).hexdigest()[:12]
        run(  # resumable: a rerun reads the pages' OCR JSON of an earlier run
            f"OCR of {len(real[1])} real pages",
            [python, "tools/ocr_pages.py", real[0].parent, "--out", real_ocr],
            log,
        )
        run(
            f"inference on {len(real[1])} real pages",
            [
                *(
                    python,
                    "tools/infer.py",
                    "--config-file",
                    training.config,
                    "--input",
                    real[0].parent,
                ),
                *("--ocr-root", real_ocr, "--output", out / "real"),
                *("--score-threshold", SHOWN_SCORE, *common),
                *("MODEL.WEIGHTS", train_dir / "model_final.pth"),
            ],
            log,
        )
    run(
        "plots",
        [python, "tools/plot_metrics.py", train_dir / "metrics.json", "--out", out / "plots"],
        log,
    )

    match = match_predictions(
        held_out_truth.values(), out / "inference" / "predictions", SHOWN_SCORE
    )
    ap = final_ap(train_dir / "metrics.json")
    match = {
        "benchmark": f"make demo{'-zh' if args.language == 'zh' else ''}: what the overlays "
        f"show (score >= {SHOWN_SCORE}) on {args.held_out} held-out pages, from their OCR",
        "device": f"cpu ({len(os.sched_getaffinity(0))} cores)",
        **match,
        "minutes": round((time.perf_counter() - start) / 60, 2),
        # the pages and their OCR of an earlier run: the minutes leave out rendering and OCR
        "pages_reused": reuse,
        "training_precision": "SOLVER.AMP as given" if amp is None else amp or "fp32",
        "val_ap": round(ap["AP"], 2),
        "targets": {
            "matched_fraction": ">= 0.85",
            "false_fraction": "<= 0.10",
            "minutes": "<= 15 on 2 cores",
        },
        "machine": machine(),
    }
    write_json_atomic(out / "heldout_match.json", match)
    per_class = ", ".join(f"{k[3:]} {v:.1f}" for k, v in ap.items() if k.startswith("AP-"))
    print(
        f"\nbbox AP on the synthetic validation pages: {ap['AP']:.1f} "
        f"(AP50 {ap['AP50']:.1f}, AP75 {ap['AP75']:.1f})\nper class: {per_class}"
    )
    print(
        f"held-out pages: {match['matched']} of {match['gt']} blocks found "
        f"({100 * match['matched_fraction']:.0f}%, target 85%), {match['false']} of "
        f"{match['shown']} shown boxes false ({100 * match['false_fraction']:.0f}%, target "
        f"at most 10%): {out / 'heldout_match.json'}"
    )
    if real:
        real_match = match_predictions(
            [real[0]],
            out / "real" / "predictions",
            SHOWN_SCORE,
            class_map=CDLA_AS_PUBLAYNET if args.classes == "cdla" else None,
        )
        classes_found = sorted(k for k, v in real_match["per_class"].items() if v["matched"])
        real_match = {
            "benchmark": f"make demo: what the overlays show (score >= {SHOWN_SCORE}) on "
            f"{len(real[1])} real pages ({real[0]}), from their OCR"
            + (", CDLA classes counted as PubLayNet's" if args.classes == "cdla" else ""),
            "device": f"cpu ({len(os.sched_getaffinity(0))} cores)",
            **real_match,
            "classes_found": classes_found,
            "targets": {"matched_fraction": ">= 0.5", "false_fraction": "<= 0.25"},
            "machine": machine(),
        }
        write_json_atomic(out / "real_match.json", real_match)
        print(
            f"real pages: {real_match['matched']} of {real_match['gt']} blocks found "
            f"({100 * real_match['matched_fraction']:.0f}%, target 50%), {real_match['false']} "
            f"of {real_match['shown']} shown boxes false "
            f"({100 * real_match['false_fraction']:.0f}%, target at most 25%), "
            f"{real_match['pages_without_detection']} pages with no box; classes found: "
            f"{', '.join(classes_found) or 'none'}: {out / 'real_match.json'}"
        )
    print(f"demo finished in {(time.perf_counter() - start) / 60:.1f} min; outputs in {out}:")
    for name in (
        *(("real/overlays",) if real else ()),
        "plots/loss.png",
        "plots/ap_per_class.png",
        "inference/overlays",
        "inference/markdown",
        "inference/coco_instances_results.json",
        "train/metrics.json",
        "demo.log",
    ):
        print(f"  {out / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
