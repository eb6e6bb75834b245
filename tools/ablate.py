#!/usr/bin/env python
"""Train variants × seeds with one budget and tabulate their AP (the seed's ablation table).

    python tools/ablate.py --config-file configs/cdla/cascade_layoutlmv3_text_gated.yaml \
        --variants configs/ablation/fusion.yaml --seeds 0 1 2 --output-dir output/ablation \
        --num-gpus 8 --text-only-classes "Figure caption" "Table caption" [KEY VALUE ...]

Each run is ``tools/train_net.py --config-file … [KEY VALUE …] <variant's overrides> SEED s
OUTPUT_DIR <output-dir>/<variant>/seed<s>``, which evaluates at its end; a run whose
``metrics.json`` already holds that evaluation is not trained again, so an interrupted ablation
goes on where it stopped. Writes ``ablation.json`` (per variant: mAP and each class's AP as lists
over seeds, ``text_only_ap`` with ``--text-only-classes``, mean and std), ``ablation.md`` and
``ablation.png`` into the output folder.
"""

import argparse
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

from ditod.cli import add_debug_flag, run_tool
from ditod.engine.ablation import final_ap, read_variants, summarize, write_report

ROOT = Path(__file__).resolve().parents[1]
CONFIG_KEY = re.compile(r"[A-Z][A-Z0-9_]*(\.[A-Z0-9_]+)+")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config-file", required=True)
    parser.add_argument("--variants", required=True,
                        help="YAML: variant name → {KEY: VALUE} config overrides")  # fmt: skip
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--output-dir", required=True)
    parser.add_argument("--num-gpus", type=int, default=1, help="per run (tools/train_net.py)")
    parser.add_argument("--text-only-classes", nargs="*", default=[],
                        help="classes that only text tells apart (their mean AP)")  # fmt: skip
    parser.add_argument("--title", default="Ablation")
    add_debug_flag(parser)
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides for every run")
    args = parser.parse_args(argv)
    keys = [name for name in args.text_only_classes if CONFIG_KEY.fullmatch(name)]
    if keys:  # KEY VALUE pairs after the class names would silently not reach the runs
        parser.error(f"--text-only-classes took the config key '{keys[0]}' for a class name: "
                     "give KEY VALUE overrides before --text-only-classes, or another option "
                     "after its classes")  # fmt: skip
    variants = read_variants(args.variants)
    out = Path(args.output_dir)
    runs = {name: [] for name in variants}
    for seed in args.seeds:
        for name, overrides in variants.items():
            run_dir = out / name / f"seed{seed}"
            result = final_ap(run_dir / "metrics.json")
            if result is None:
                command = [sys.executable, str(ROOT / "tools" / "train_net.py"),
                           "--config-file", args.config_file, "--num-gpus", str(args.num_gpus),
                           *args.opts, *overrides, "SEED", str(seed),
                           "OUTPUT_DIR", str(run_dir)]  # fmt: skip
                print(f"\n== {name}, seed {seed}\n$ {shlex.join(command)}", flush=True)
                start = time.perf_counter()
                if subprocess.run(command, cwd=ROOT).returncode != 0:
                    print(f"error: {name}, seed {seed} failed (its log: {run_dir}/log.txt)",
                          file=sys.stderr)  # fmt: skip
                    return 1
                print(f"== {name}, seed {seed}: {time.perf_counter() - start:.0f} s", flush=True)
                result = final_ap(run_dir / "metrics.json")
                if result is None:
                    print(f"error: {run_dir}/metrics.json has no evaluation", file=sys.stderr)
                    return 1
            missing = [c for c in args.text_only_classes if f"AP-{c}" not in result]
            if missing:
                known = sorted(k.removeprefix("AP-") for k in result if k != "AP")
                print(f"error: {run_dir}: no AP for {missing} (its classes: {known})",
                      file=sys.stderr)  # fmt: skip
                return 2
            runs[name].append(result)
    written = write_report(summarize(runs, args.text_only_classes), out, args.title)
    print("\n" + written[1].read_text(encoding="utf-8"))
    print("written: " + ", ".join(str(p) for p in written))
    return 0


if __name__ == "__main__":
    sys.exit(run_tool(main))
