"""The page-text JSON: one file per page image, what OCR and the PDF text layer write and what
training and inference read; the only module that builds, writes, validates and reads it.

``{"bbox": [[x, y, w, h], ...], "words": [...], "W": width, "H": height}`` in the pixels of the
upright page image, plus ``scores`` and ``polys`` from OCR and an ``engine`` record (its name and
version and, for first-token OCR, ``first_tokens`` k: each line then holds only its first k
words). Malformed boxes inside a well-formed file are the tokenizer's to drop and count.
"""

import json
import math
from pathlib import Path

from ..file_io import write_json_atomic

__all__ = [
    "engine_record",
    "is_valid_ocr_json",
    "ocr_folder_lines",
    "ocr_json_problem",
    "page_text",
    "read_ocr_json",
    "write_ocr_json",
]


def engine_record(engine) -> dict:
    """The ``engine`` entry for an engine instance: name, version and, for first-token OCR,
    ``first_tokens`` (readers keeping more tokens per line must refuse the file)."""
    record = {"name": engine.name, "version": engine.version}
    if getattr(engine, "first_tokens", 0):
        record["first_tokens"] = engine.first_tokens
        if getattr(engine, "tokenizer", ""):  # the lines were cut where its tokens end
            record["tokenizer"] = engine.tokenizer
    return record


def page_text(lines, width: int, height: int, engine: dict) -> dict:
    """The JSON dict of one page from recognised lines ``[(box, text, score, polygon), ...]``."""
    return {
        "bbox": [box for box, _, _, _ in lines],
        "words": [text for _, text, _, _ in lines],
        "W": int(width),
        "H": int(height),
        "scores": [round(score, 4) for _, _, score, _ in lines],
        "polys": [poly for _, _, _, poly in lines],
        "engine": engine,
    }


def _positive_number(value) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value > 0
    )


def ocr_json_problem(page) -> str | None:
    """What makes ``page`` (a parsed JSON value) not a page-text record, or None."""
    if not isinstance(page, dict):
        return f"is a JSON {type(page).__name__}, not an object with 'words', 'bbox', 'W', 'H'"
    missing = [key for key in ("words", "bbox", "W", "H") if key not in page]
    if missing:
        return f"has no {', '.join(repr(k) for k in missing)} (needs 'words', 'bbox', 'W', 'H')"
    for key in ("words", "bbox"):
        if not isinstance(page[key], list):
            return f"'{key}' is a {type(page[key]).__name__}, not a list"
    if len(page["words"]) != len(page["bbox"]):
        return (
            f"'words' and 'bbox' have different lengths ({len(page['words'])} vs "
            f"{len(page['bbox'])})"
        )
    if not (_positive_number(page["W"]) and _positive_number(page["H"])):
        return f"page size W={page['W']!r}, H={page['H']!r} is not positive"
    return None


def read_ocr_json(path) -> dict:
    """One page's text JSON; a missing, unreadable or malformed file raises naming it and the
    problem (``FileNotFoundError`` / ``ValueError``)."""
    try:
        with open(path, encoding="utf-8") as f:
            page = json.load(f)
    except FileNotFoundError as error:
        raise FileNotFoundError(f"{path}: OCR JSON not found") from error
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: OCR JSON is not valid JSON ({error})") from error
    if problem := ocr_json_problem(page):
        raise ValueError(f"{path}: OCR JSON {problem}")
    return page


def ocr_folder_lines(folder) -> list[str]:
    """Every text line of the page-text JSON files in ``folder``, in file-name order (the text
    a tokenizer is trained on)."""
    return [
        line
        for path in sorted(Path(folder).glob("*.json"))
        for line in read_ocr_json(path)["words"]
    ]


def write_ocr_json(path, page: dict) -> None:
    """Write one page's text JSON atomically (a reader never sees half of it)."""
    write_json_atomic(Path(path), page)


def is_valid_ocr_json(path, first_tokens: int = 0) -> bool:
    """A finished page-text JSON (:func:`read_ocr_json` reads it) holding every token of its
    lines (``first_tokens`` k > 0: at least their first k). A run skips such pages."""
    try:
        page = read_ocr_json(path)
    except (OSError, ValueError):
        return False
    engine = page.get("engine")
    read = engine.get("first_tokens", 0) if isinstance(engine, dict) else 0
    return not read or bool(first_tokens and read >= first_tokens)
