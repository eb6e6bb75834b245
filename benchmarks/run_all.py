"""Run every benchmark in this folder, then tabulate benchmarks/results/*.json as Markdown.

python benchmarks/run_all.py              # runs them all, writes benchmarks/results/summary.md
python benchmarks/run_all.py --tabulate   # only rewrites the table from the result files
"""

import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"


def main():
    RESULTS.mkdir(exist_ok=True)
    scripts = sorted(
        p for p in HERE.glob("*.py") if p.name != Path(__file__).name and not p.name.startswith("_")
    )
    failed = []
    for script in [] if "--tabulate" in sys.argv[1:] else scripts:
        print(f"== {script.name}", flush=True)
        if subprocess.run([sys.executable, str(script)], cwd=HERE.parent).returncode:
            failed.append(script.name)
    rows = ["| benchmark | device | result | target |", "|---|---|---|---|"]
    for path in sorted(RESULTS.glob("*.json")):
        result = json.loads(path.read_text())
        targets = result.get("targets", {})
        measured = ", ".join(
            f"{key} {result[key]:.3g}" for key in targets if isinstance(result.get(key), float)
        )
        wanted = ", ".join(f"{k} {v}" for k, v in targets.items())
        rows.append(
            f"| {result.get('benchmark', path.stem)} | {result.get('device')} "
            f"| {measured} | {wanted} |"
        )
    tmp = RESULTS / "summary.md.tmp"
    tmp.write_text("\n".join(rows) + "\n")
    os.replace(tmp, RESULTS / "summary.md")
    print("\n".join(rows))
    if failed:
        sys.exit(f"benchmarks failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
