#!/usr/bin/env python
"""Train variants × seeds with one budget and tabulate their AP (an ablation table).

    python tools/ablate.py --config-file configs/cdla/cascade_layoutlmv3_text_gated.yaml \
        --variants configs/ablation/fusion.yaml --seeds 0 1 2 --output-dir output/ablation \
        --num-gpus 8 --text-only-classes "Figure caption" "Table caption" [KEY VALUE ...]

Each run is ``tools/train_net.py --config-file … [KEY VALUE …] <variant's overrides> SEED s
OUTPUT_DIR <output-dir>/<variant>/seed<s>``, which evaluates at its end; a run whose
``metrics.json`` already holds that evaluation is not trained again, so an interrupted ablation
goes on where it stopped (each run records its settings in ``ablate_settings.json``; a finished
run trained with other settings is refused, not reused). Writes ``ablation.json`` (per variant:
mAP and each class's AP as lists over seeds, ``text_only_ap`` with ``--text-only-classes``, mean
and std), ``ablation.md`` and ``ablation.png`` into the output folder.
"""

import argparse
import json
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

from ditod.cli import add_debug_flag, run_tool
from ditod.engine.ablation import final_ap, read_variants, summarize, write_report
from ditod.file_io import write_text_atomic

ROOT = Path(__file__).resolve().parents[1]
SETTINGS_FILE = "ablate_settings.json"
CONFIG_KEY = re.compile(r"[A-Z][A-Z0-9_]*(\.[A-Z0-9_]+)+")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config-file", required=True)
    parser.add_argument(
        "--variants", required=True, help="YAML: variant name → {KEY: VALUE} config overrides"
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--output-dir", required=True)
    parser.add_argument("--num-gpus", type=int, default=1, help="per run (tools/train_net.py)")
    parser.add_argument(
        "--text-only-classes",
        nargs="*",
        default=[],
        help="classes that only text tells apart (their mean AP)",
    )
    parser.add_argument("--title", default="Ablation")
    add_debug_flag(parser)
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides for every run")
    args = parser.parse_args(argv)
    keys = [name for name in args.text_only_classes if CONFIG_KEY.fullmatch(name)]
    if keys:  # KEY VALUE pairs after the class names would silently not reach the runs
        parser.error(
            f"--text-only-classes took the config key '{keys[0]}' for a class name: "
            "give KEY VALUE overrides before --text-only-classes, or another option "
            "after its classes"
        )
    variants = read_variants(args.variants)
    out = Path(args.output_dir)
    runs = {name: [] for name in variants}
    for seed in args.seeds:
        for name, overrides in variants.items():
            run_dir = out / name / f"seed{seed}"
            settings = {
                "config_file": str(Path(args.config_file).resolve()),
                "overrides": [*args.opts, *overrides, "SEED", str(seed)],
            }
            result = final_ap(run_dir / "metrics.json")
            if result is not None and not same_settings(run_dir, settings):
                print(
                    f"error: {run_dir} holds a finished run trained with other settings than "
                    f"these (see its {SETTINGS_FILE}): give another --output-dir, or remove "
                    "it to train it again",
                    file=sys.stderr,
                )
                return 2
            if result is None:
                command = [
                    sys.executable,
                    str(ROOT / "tools" / "train_net.py"),
                    "--config-file",
                    args.config_file,
                    "--num-gpus",
                    str(args.num_gpus),
                    *settings["overrides"],
                    "OUTPUT_DIR",
                    str(run_dir),
                ]
                run_dir.mkdir(parents=True, exist_ok=True)
                write_text_atomic(run_dir / SETTINGS_FILE, json.dumps(settings, indent=1))
                print(f"\n== {name}, seed {seed}\n$ {shlex.join(command)}", flush=True)
                start = time.perf_counter()
                if subprocess.run(command, cwd=ROOT).returncode != 0:
                    print(
                        f"error: {name}, seed {seed} failed (its log: {run_dir}/log.txt)",
                        file=sys.stderr,
                    )
                    return 1
                print(f"== {name}, seed {seed}: {time.perf_counter() - start:.0f} s", flush=True)
                result = final_ap(run_dir / "metrics.json")
                if result is None:
                    print(f"error: {run_dir}/metrics.json has no evaluation", file=sys.stderr)
                    return 1
            missing = [c for c in args.text_only_classes if f"AP-{c}" not in result]
            if missing:
                known = sorted(k.removeprefix("AP-") for k in result if k != "AP")
                print(
                    f"error: {run_dir}: no AP for {missing} (its classes: {known})", file=sys.stderr
                )
                return 2
            runs[name].append(result)
    written = write_report(summarize(runs, args.text_only_classes), out, args.title)
    print("\n" + written[1].read_text(encoding="utf-8"))
    print("written: " + ", ".join(str(p) for p in written))
    return 0


def same_settings(run_dir: Path, settings: dict) -> bool:
    """Whether the finished run in ``run_dir`` was trained with ``settings`` (a run from before
    they were recorded is taken as is, with a warning)."""
    recorded = run_dir / SETTINGS_FILE
    if not recorded.is_file():
        print(
            f"warning: {run_dir} has no {SETTINGS_FILE}; reusing its result unchecked",
            file=sys.stderr,
        )
        return True
    return json.loads(recorded.read_text(encoding="utf-8")) == json.loads(json.dumps(settings))


if __name__ == "__main__":
    sys.exit(run_tool(main))
