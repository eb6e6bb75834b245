"""Run every benchmark in this folder, then tabulate benchmarks/results/*.json as Markdown into
benchmarks/results/summary.md and README.md (between its bench-table markers): every figure in
those tables is a value of a result file.

python benchmarks/run_all.py              # runs them all (but the long ones), then tabulates
python benchmarks/run_all.py --all        # the long ones too (LONG: hours on a CPU)
python benchmarks/run_all.py --tabulate   # only rewrites the tables from the result files
"""

import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
README = HERE.parent / "README.md"
START, END = "<!-- bench-table -->", "<!-- /bench-table -->"
LONG = {"ablation_synthetic.py"}  # hours of training on 2 cores (its docstring has the time)


def number(value) -> str:
    """4 significant digits; no exponent for values of 1 and more."""
    if isinstance(value, int) or abs(value) >= 1000:
        return f"{value:.0f}"
    return f"{value:.4g}"


def device(result: dict) -> str:
    """The result's device, with the CPU it ran on where the file records it."""
    machine = result.get("machine")
    if not machine:
        return str(result.get("device"))
    flags = " ".join(machine["cpu_flags"])
    return (f"{result.get('device')}; {machine['cpu']} ({machine['cpu_capability']}: {flags}), "
            f"load {machine['load_average'][0]}")  # fmt: skip


def table() -> str:
    """One Markdown row per result file: what it measured, on what, every number it holds, and
    its targets."""
    rows = ["| benchmark | device | result | target |", "|---|---|---|---|"]
    for path in sorted(RESULTS.glob("*.json")):
        result = json.loads(path.read_text())
        numbers = ", ".join(
            f"{key} {number(value)}" for key, value in result.items()
            if isinstance(value, int | float) and not isinstance(value, bool)
        )  # fmt: skip
        wanted = ", ".join(f"{k} {v}" for k, v in result.get("targets", {}).items())
        rows.append(f"| {result.get('benchmark', path.stem)} | {device(result)} "
                    f"| {numbers} | {wanted} |")  # fmt: skip
    return "\n".join(rows)


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def main():
    RESULTS.mkdir(exist_ok=True)
    scripts = sorted(
        p for p in HERE.glob("*.py") if p.name != Path(__file__).name and not p.name.startswith("_")
        and ("--all" in sys.argv[1:] or p.name not in LONG)
    )  # fmt: skip
    failed = []
    for script in [] if "--tabulate" in sys.argv[1:] else scripts:
        print(f"== {script.name}", flush=True)
        if subprocess.run([sys.executable, str(script)], cwd=HERE.parent).returncode:
            failed.append(script.name)
    rows = table()
    write_atomic(RESULTS / "summary.md", rows + "\n")
    readme = README.read_text(encoding="utf-8")
    before, rest = readme.split(START, 1)
    write_atomic(README, f"{before}{START}\n{rows}\n{END}{rest.split(END, 1)[1]}")
    print(rows)
    if failed:
        sys.exit(f"benchmarks failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
