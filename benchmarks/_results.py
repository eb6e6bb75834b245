"""Shared by the benchmarks: the result JSON (written atomically) that ``run_all.py`` tabulates,
and loading the repository's scripts (``datasets/…``, ``tools/…``; not packages)."""

import importlib.util
import json
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def load_script(relative: str):
    """A script of this repository as a module."""
    path = ROOT / relative
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_result(summary: dict, path) -> None:
    """Write ``summary`` to ``path`` via a temporary file and print it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(summary, indent=2))
    os.replace(tmp, path)
    print(json.dumps(summary, indent=2))
