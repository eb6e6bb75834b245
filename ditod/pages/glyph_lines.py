"""Glyphs of a text layer → words → line segments, as an OCR detector would cut them.

Grouping happens in the frame of the *displayed* page (``/Rotate`` and each glyph's text matrix
applied), along the direction each glyph's text advances there: upright text reads left to
right, text turned on the page (a margin note, a rotated table header) reads down or up, and
mirrored or upside-down text reads right to left, its words in the layer's (logical) order. A
line is cut where the gap between two glyphs is large for their size and for the line's own
word gaps (table cells, tab stops), as OCR engines cut their lines.

Pure geometry: no PDF library here.
"""

import itertools
import statistics
from dataclasses import dataclass

__all__ = ["DIRECTIONS", "NEWLINE", "SPACE", "Glyph", "Segment", "direction_of", "segments"]

DIRECTIONS = ("right", "down", "left", "up")
SPACE, NEWLINE = "space", "newline"  # markers between glyphs: a word break, a line break
# In units of the glyphs' size across the line: a gap wider than WORD_GAP breaks a word; wider
# than CELL_GAP (and than CELL_TO_WORD_GAP times the line's typical word gap) cuts the line
# (table cells); a glyph off the line by more than ACROSS_SHIFT starts another line.
WORD_GAP = 0.25
CELL_GAP = 0.8
CELL_TO_WORD_GAP = 2.5
ACROSS_SHIFT = 0.5
TYPICAL_WORD_GAP = 0.3  # a line without word gaps to measure (one word, CJK)


@dataclass(frozen=True)
class Glyph:
    """One character drawn on the displayed page: ``box`` (x0, y0, x1, y1) in its pixels (y
    down), ``direction`` one of :data:`DIRECTIONS` (where its text advances)."""

    char: str
    box: tuple[float, float, float, float]
    direction: str


@dataclass
class Segment:
    """A line segment: its words (layer order), ``box`` (x0, y0, x1, y1), ``direction`` and
    number of glyphs."""

    words: list[str]
    box: tuple[float, float, float, float]
    direction: str
    glyphs: int

    @property
    def text(self) -> str:
        return " ".join(self.words)


def direction_of(dx: float, dy: float, max_skew: float = 0.36) -> str | None:
    """The direction of an advance vector (dx, dy) on the displayed page (y down), or None when
    it is more than ``max_skew`` (tan of ~20°) off every axis (text set at an angle)."""
    if abs(dx) >= abs(dy):
        if abs(dy) > max_skew * abs(dx) or dx == 0:
            return None
        return "right" if dx > 0 else "left"
    if abs(dx) > max_skew * abs(dy):
        return None
    return "down" if dy > 0 else "up"


def _along(glyph: Glyph) -> tuple[float, float, float, float]:
    """(start, end) along the glyph's direction, (centre, size) across it."""
    x0, y0, x1, y1 = glyph.box
    if glyph.direction in ("right", "left"):
        start, end = (x0, x1) if glyph.direction == "right" else (-x1, -x0)
        return start, end, (y0 + y1) / 2, max(y1 - y0, 1e-3)
    start, end = (y0, y1) if glyph.direction == "down" else (-y1, -y0)
    return start, end, (x0 + x1) / 2, max(x1 - x0, 1e-3)


def _runs(items) -> list[list]:
    """Split the layer's glyphs and markers into runs that may form one line: same direction,
    on one line across, adjacent or a little apart along it."""
    runs, run, last = [], [], None
    for item in items:
        if item == NEWLINE:
            runs.append(run)
            run, last = [], None
            continue
        if item == SPACE:
            if run and run[-1] != SPACE:
                run.append(SPACE)
            continue
        start, _, centre, size = _along(item)
        if last is not None:
            _, last_end, last_centre, _ = _along(last)
            gap = start - last_end
            if (
                item.direction != last.direction
                or abs(centre - last_centre) > ACROSS_SHIFT * size
                or gap < -size
            ):
                runs.append(run)
                run = []
        run.append(item)
        last = item
    runs.append(run)
    return [r for r in runs if any(g != SPACE for g in r)]


def _cut(run: list) -> list[Segment]:
    """One run → its segments, cut at the gaps that are too wide for words."""
    glyphs = [g for g in run if g != SPACE]
    spaced = set()  # indices of glyphs with an explicit space before them
    count = 0
    for item in run:
        if item == SPACE:
            spaced.add(count)
        else:
            count += 1
    gaps = [0.0]
    for previous, glyph in itertools.pairwise(glyphs):
        gaps.append(_along(glyph)[0] - _along(previous)[1])
    sizes = [_along(g)[3] for g in glyphs]
    size = statistics.median(sizes)
    word_gaps = [
        gap
        for i, gap in enumerate(gaps[1:], 1)
        if (WORD_GAP * size < gap or i in spaced) and 0 < gap <= size
    ]
    typical = statistics.median(word_gaps) if word_gaps else TYPICAL_WORD_GAP * size
    cut_at = max(CELL_GAP * size, CELL_TO_WORD_GAP * typical)

    segments, words, word, members = [], [], [], []

    def close():
        nonlocal words, word, members
        if word:
            words.append("".join(word))
        if words:
            boxes = [g.box for g in members]
            box = (
                min(b[0] for b in boxes),
                min(b[1] for b in boxes),
                max(b[2] for b in boxes),
                max(b[3] for b in boxes),
            )
            segments.append(Segment(words, box, members[0].direction, len(members)))
        words, word, members = [], [], []

    for i, glyph in enumerate(glyphs):
        if i and gaps[i] > cut_at:
            close()
        elif i and (i in spaced or gaps[i] > WORD_GAP * size) and word:
            words.append("".join(word))
            word = []
        word.append(glyph.char)
        members.append(glyph)
    close()
    return segments


def segments(items) -> list[Segment]:
    """Line segments of a text layer: ``items`` are :class:`Glyph` s in the layer's order,
    with :data:`SPACE` and :data:`NEWLINE` markers where it has them."""
    return [segment for run in _runs(items) for segment in _cut(run)]
