"""Writing files so that a reader never sees half of one: everything is written to a temporary
file beside the target and renamed over it (``os.replace`` is atomic on one file system).

Imports neither torch nor detectron2.
"""

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = [
    "atomic_path",
    "prepare_output_dir",
    "printable",
    "write_json_atomic",
    "write_text_atomic",
]


def printable(text) -> str:
    """``str(text)`` with the bytes of a file name that is not valid UTF-8 (which Python keeps as
    lone surrogates) written as ``\\xNN``, so that it can be printed, logged and put in JSON."""
    return str(text).encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


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


def prepare_output_dir(path, what: str = "output folder") -> Path:
    """Create ``path`` (a folder) and check that files can be written in it, before any work is
    done; ``OSError`` naming the folder and the problem otherwise."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(f"{path}: the {what} is a file, not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-check-"):
            pass
    except OSError as error:
        reason = error.strerror or str(error)
        raise PermissionError(f"{path}: cannot write to the {what} ({reason})") from None
    return path
