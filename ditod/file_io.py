"""Writing files so that a reader never sees half of one: everything is written to a temporary
file beside the target and renamed over it (``os.replace`` is atomic on one file system).

Imports neither torch nor detectron2.
"""

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

__all__ = ["atomic_path", "write_json_atomic", "write_text_atomic"]


@contextlib.contextmanager
def atomic_path(path, *, fsync: bool = False) -> Iterator[Path]:
    """A temporary path beside ``path`` to write to; when the block ends without an error it is
    renamed to ``path``, otherwise removed. The parent folder is created.

    ``fsync``: flush the file to disk before the rename (checkpoints: a crash of the machine
    leaves the old file or the new one, never an empty one)::

        with atomic_path(out / "page.png") as tmp:
            image.save(tmp, format="PNG")
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        if fsync:
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomic(path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json_atomic(path, data, indent: int | None = None) -> None:
    """Write ``data`` as JSON (non-ASCII characters kept) to ``path`` atomically."""
    write_text_atomic(path, json.dumps(data, ensure_ascii=False, indent=indent))
