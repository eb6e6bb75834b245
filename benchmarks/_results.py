"""Writing a benchmark's result JSON (atomically) for ``run_all.py`` to tabulate."""

import json
import os
from pathlib import Path


def write_result(summary: dict, path) -> None:
    """Write ``summary`` to ``path`` via a temporary file and print it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(summary, indent=2))
    os.replace(tmp, path)
    print(json.dumps(summary, indent=2))
