"""How well a page's text was read: character recall and precision of an OCR page against the
page's known text (both page-text JSON dicts), for scripts with and without spaces alike."""

from dataclasses import dataclass
from difflib import SequenceMatcher

__all__ = ["CharacterMatch", "character_match"]


@dataclass
class CharacterMatch:
    """Characters (spaces not counted) of the known text, of the read text, and of both."""

    matched: int = 0
    truth: int = 0
    read: int = 0

    @property
    def recall(self) -> float:
        return self.matched / self.truth if self.truth else 1.0

    @property
    def precision(self) -> float:
        return self.matched / self.read if self.read else 1.0

    def __add__(self, other: "CharacterMatch") -> "CharacterMatch":
        return CharacterMatch(
            self.matched + other.matched, self.truth + other.truth, self.read + other.read
        )


def _overlap(a, b) -> float:
    """Area of ``[x, y, w, h]`` boxes ``a`` and ``b`` in common."""
    width = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    height = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    return max(width, 0) * max(height, 0)


def _glyphs(text: str) -> str:
    return "".join(text.split())


def character_match(truth: dict, read: dict) -> CharacterMatch:
    """Each read line goes to the known line its box overlaps most (none: all its characters
    are false); a known line's read lines, left to right, are aligned with it character by
    character (``difflib``'s matching blocks), so a character counts where it stands in order,
    not merely somewhere on the page."""
    truth_lines = list(zip(truth["bbox"], truth["words"], strict=True))
    assigned = [[] for _ in truth_lines]
    result = CharacterMatch(truth=sum(len(_glyphs(text)) for _, text in truth_lines))
    for box, text in zip(read["bbox"], read["words"], strict=True):
        result.read += len(_glyphs(text))
        overlaps = [_overlap(box, truth_box) for truth_box, _ in truth_lines]
        if overlaps and max(overlaps) > 0:
            assigned[overlaps.index(max(overlaps))].append((box[0], text))
    for (_, known), pieces in zip(truth_lines, assigned, strict=True):
        if pieces:
            got = "".join(_glyphs(text) for _, text in sorted(pieces))
            blocks = SequenceMatcher(None, _glyphs(known), got, autojunk=False)
            result.matched += sum(block.size for block in blocks.get_matching_blocks())
    return result
