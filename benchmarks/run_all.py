"""Run every benchmark in this folder, then tabulate benchmarks/results/*.json as Markdown into
benchmarks/results/summary.md and README.md (between its bench-table markers; precision.json
also as its own table between the precision-table markers): every figure in those tables is a
value of a result file.

python benchmarks/run_all.py              # runs them all (but the long ones), then tabulates
python benchmarks/run_all.py --all        # the long ones too (LONG: hours on a CPU)
python benchmarks/run_all.py --tabulate   # only rewrites the tables from the result files
"""

import json
import subprocess
import sys
from pathlib import Path

from ditod.file_io import write_text_atomic

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
README = HERE.parent / "README.md"
START, END = "<!-- bench-table -->", "<!-- /bench-table -->"
PRECISION_START, PRECISION_END = "<!-- precision-table -->", "<!-- /precision-table -->"
# hours of training on 2 cores (its docstring has the time); the demo, a quarter of an hour
LONG = {"ablation_synthetic.py", "demo_real_pages.py"}


def number(value) -> str:
    """4 significant digits; no exponent for values of 1 and more."""
    if isinstance(value, int) or abs(value) >= 1000:
        return f"{value:.0f}"
    return f"{value:.4g}"


def device(result: dict) -> str:
    """The result's device, with the CPU it ran on where the file records it."""
    machine = result.get("machine")
    if not machine:  # results of an earlier round, before every file recorded its machine
        return f"{result.get('device')}; CPU not recorded"
    flags = " ".join(machine["cpu_flags"])
    return (
        f"{result.get('device')}; {machine['cpu']} ({machine['cpu_capability']}: {flags}), "
        f"load {machine['load_average'][0]}"
    )


def table() -> str:
    """One Markdown row per result file: what it measured, on what, every number it holds, and
    its targets."""
    rows = ["| benchmark | device | result | target |", "|---|---|---|---|"]
    for path in sorted(RESULTS.glob("*.json")):
        result = json.loads(path.read_text())
        numbers = ", ".join(
            f"{key} {number(value)}"
            for key, value in result.items()
            if isinstance(value, int | float) and not isinstance(value, bool)
        )
        wanted = ", ".join(f"{k} {v}" for k, v in result.get("targets", {}).items())
        rows.append(
            f"| {result.get('benchmark', path.stem)} | {device(result)} | {numbers} | {wanted} |"
        )
    return "\n".join(rows)


def precision_table() -> str:
    """One Markdown row per ``TEST.PRECISION`` variant of ``results/precision.json``."""
    result = json.loads((RESULTS / "precision.json").read_text())
    machine = result["machine"]
    rows = [
        f"Measured on {machine['cpu']} ({machine['cores']} cores, {machine['threads']} threads, "
        f"{machine['cpu_capability']}: {' '.join(machine['cpu_flags'])}; load "
        f"{machine['load_average'][0]}); `auto` chose **{result['auto_choice']}** "
        f"({result['auto_reason']}); bf16's attention: {result['bf16_attention']}; int8's: "
        f"{result['int8_attention']}.",
        "",
        "| TEST.PRECISION | base page (s) | speed-up | demo AP | fp32 boxes found |",
        "|---|---|---|---|---|",
    ]
    fp32 = result["s_per_page_base_fp32"]
    variants = (
        "fp32",
        "bf16",
        "bf16_fused_attention",
        "bf16_plain_autocast",
        "int8",
        "int8_fp32_attention",
    )
    for name in variants:
        seconds = result[f"s_per_page_base_{name}"]
        rows.append(
            f"| {name.replace('_', ' ')} | {number(seconds)} | {fp32 / seconds:.2f}x "
            f"| {number(result[f'ap_demo_{name}'])} "
            f"| {100 * result[f'fp32_boxes_found_{name}']:.1f}% |"
        )
    return "\n".join(rows)


def replace_block(text: str, start: str, end: str, rows: str) -> str:
    """``text`` with what stands between the markers ``start`` and ``end`` replaced by ``rows``."""
    before, rest = text.split(start, 1)
    return f"{before}{start}\n{rows}\n{end}{rest.split(end, 1)[1]}"


def main():
    RESULTS.mkdir(exist_ok=True)
    scripts = sorted(
        p
        for p in HERE.glob("*.py")
        if p.name != Path(__file__).name
        and not p.name.startswith("_")
        and ("--all" in sys.argv[1:] or p.name not in LONG)
    )
    failed = []
    for script in [] if "--tabulate" in sys.argv[1:] else scripts:
        print(f"== {script.name}", flush=True)
        if subprocess.run([sys.executable, str(script)], cwd=HERE.parent).returncode:
            failed.append(script.name)
    rows = table()
    write_text_atomic(RESULTS / "summary.md", rows + "\n")
    readme = replace_block(README.read_text(encoding="utf-8"), START, END, rows)
    readme = replace_block(readme, PRECISION_START, PRECISION_END, precision_table())
    write_text_atomic(README, readme)
    print(rows)
    if failed:
        sys.exit(f"benchmarks failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
