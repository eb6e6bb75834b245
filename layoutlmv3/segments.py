"""The usable text segments of an OCR page: a segment whose box cannot be a box on the page is
dropped and counted by reason, one whose box runs over the page's edge is clipped to it."""

import math
from collections import Counter

__all__ = ["DROP_REASONS", "box_values", "describe_drops", "usable_segments"]

DROP_REASONS = ("malformed box", "negative size", "outside the page", "text not a string")


def box_values(box) -> tuple[float, float, float, float] | None:
    """``[x, y, w, h]`` as four finite floats, or None (null, wrong length, not numbers)."""
    if not isinstance(box, list | tuple) or len(box) != 4 or any(isinstance(v, bool) for v in box):
        return None
    try:
        values = tuple(float(v) for v in box)
    except (TypeError, ValueError):
        return None
    if not all(math.isfinite(v) for v in values):
        return None
    return values


def usable_segments(page: dict) -> tuple[list[tuple[str, tuple]], Counter]:
    """``(text, (x0, y0, x1, y1))`` of each usable segment of ``page`` (an OCR JSON dict whose
    ``words`` and ``bbox`` are equal-length lists) in the pixels of its ``W`` × ``H`` page, and
    how many segments were dropped, by reason (:data:`DROP_REASONS`)."""
    width, height = float(page["W"]), float(page["H"])
    kept, dropped = [], Counter()
    for text, box in zip(page["words"], page["bbox"]):
        values = box_values(box)
        if values is None:
            dropped["malformed box"] += 1
            continue
        x, y, w, h = values
        if w < 0 or h < 0:
            dropped["negative size"] += 1
            continue
        if x >= width or y >= height or x + w <= 0 or y + h <= 0:
            dropped["outside the page"] += 1
            continue
        if not isinstance(text, str):
            dropped["text not a string"] += 1
            continue
        clipped = (max(x, 0.0), max(y, 0.0), min(x + w, width), min(y + h, height))
        kept.append((text, clipped))
    return kept, dropped


def describe_drops(dropped: Counter, total: int) -> str:
    """``"3 of 40 OCR segments dropped (2 malformed box, 1 outside the page)"``."""
    reasons = ", ".join(f"{n} {reason}" for reason, n in dropped.items() if n)
    return f"{sum(dropped.values())} of {total} OCR segments dropped ({reasons})"
