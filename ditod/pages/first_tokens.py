"""Recognise only the start of each text line: enough for its first k tokens.

A model with ``TOKENS_PER_SEGMENT: k`` reads the first k tokens of each OCR line; recognition
is nearly all of OCR's time and grows with the line's width. Every line is still detected (its
box stays the full line's), but the recogniser first sees only the line image up to a little
into its (k+1)-th word, the word gaps found in the line's ink. The result is kept when the
recogniser reads more than k words there (so the k-th word is whole), and the line's text is
then its first k words: with a tokenizer that splits on whitespace before sub-word splitting
(RoBERTa BPE, XLM-R sentencepiece), the first k tokens lie within the first k words. A gap
inside a word (low resolution, wide kerning) cuts too early and is retried a little wider; a
line that never shows k+1 words (a short line) is recognised whole.

Scripts without spaces (Chinese, Japanese) have no word gaps to cut at, but a CJK glyph is about
one ink height wide and a tokenizer's piece of such text holds 1 to 3 characters (XLM-R's on
Chinese): k tokens lie within the first ``3 k`` characters. Such a line is cut at that many ink
heights plus a margin (first, when its glyph gaps are as dense as CJK's; after a read of its
start shows CJK otherwise); the read is kept when it shows more than ``3 k`` characters and is
mostly CJK, and the line's text is then its first ``3 k + 1`` characters. A line that reads as
Latin there, or shows too few characters, is recognised whole.

Given the model's tokenizer (``tools/ocr_pages.py --tokenizer``), a CJK line is first cut at
``2 k + 4`` ink heights (pieces of 1–2 characters, the common case) and its read kept when its
text, less the glyph at the cut, tokenizes (the model's rule: a lone leading "▁" dropped) into
more than k tokens: that text is then the line's. Otherwise it is read to the bound above and
checked the same way, else whole. On synthetic Chinese pages (``benchmarks/ocr_first_tokens.py
--language zh``): 2.05× the full read, 95.9% of lines with the same first 3 tokens, where the
bound alone gives 1.83× and 97.7%. A unigram tokenizer may still split the k-th token otherwise
once it sees the characters after the cut (``本`` + ``测`` as ``本测``): most of the 4%.
"""

import cv2
import numpy as np

from .cjk import is_cjk_text

SPIECE_UNDERLINE = "▁"  # sentencepiece's word-start mark

__all__ = [
    "CHARACTERS_PER_TOKEN",
    "cjk_prefix_width",
    "cjk_prefix_widths",
    "first_characters",
    "first_tokens_read",
    "first_words",
    "looks_cjk",
    "prefix_widths",
    "word_gaps",
]

# A run of at least this many ink-free columns times the ink's height (and of at least 2) is a
# word gap (a space is ~0.25 em; gaps between letters are under 0.1 em).
WORD_GAP = 0.2
# The most characters of CJK text one token covers (XLM-R sentencepiece pieces on Chinese), and
# the glyphs read past them before the cut, in ink heights (a full-width glyph is ~1 wide).
CHARACTERS_PER_TOKEN = 3
CJK_MARGIN = 5
# The cuts tried for k tokens before the bound when a tokenizer verifies the read, narrowest
# first: (characters per token, margin) ink heights. A (1, 3) cut first, or a 2k+2 one, was
# slower or lost agreement: a failed read costs a second one.
CJK_VERIFIED_CUTS = ((2, 4),)
# A CJK line start is only cut when that saves at least this many glyph widths.
CJK_MIN_SAVING = 4
# Gaps per ink height along a line: Latin words give 0.1-0.53 (PubLayNet), CJK glyphs (their
# own gaps and those inside left-right radicals) 0.63-0.86 (synthetic Chinese pages).
CJK_GAP_DENSITY = 0.58


def word_gaps(crop: np.ndarray) -> tuple[list[tuple[int, int]], int]:
    """Word gaps of the line image ``crop`` (h, w[, 3]), left to right, as ``(first blank
    column, first inked column after it)``, and the height of its ink in pixels."""
    gray = crop.mean(axis=2) if crop.ndim == 3 else crop.astype(np.float64)
    gray = np.clip(gray, 0, 255).astype(np.uint8)
    threshold, _ = cv2.threshold(gray, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    ink = gray <= threshold
    if ink.mean() > 0.5:  # light text on a dark background
        ink = ~ink
    rows = np.flatnonzero(ink.any(axis=1))
    if rows.size == 0:
        return [], 0
    height = int(rows[-1] - rows[0] + 1)
    inked = np.flatnonzero(ink.any(axis=0))
    blank = np.diff(inked) - 1
    wide = np.flatnonzero(blank >= max(2, WORD_GAP * height))
    return [(int(inked[i]) + 1, int(inked[i + 1])) for i in wide], height


def prefix_widths(crop: np.ndarray, tokens: int) -> list[int]:
    """Widths of the line starts to try, narrowest first, for the first ``tokens`` tokens of
    the line image ``crop``: one ink-height into its (``tokens`` + 1)-th gap-delimited word,
    then into the word two and five further (for gaps that were not spaces). Empty when the
    line is too short to cut."""
    gaps, height = word_gaps(crop)
    widths = []
    for index in (tokens - 1, tokens + 1, tokens + 4):
        if index < len(gaps):
            width = gaps[index][1] + height
            if width < crop.shape[1]:
                widths.append(width)
    return widths


def first_words(text: str, words: int) -> str | None:
    """``text`` read from a line start → its first ``words`` words, or None when it shows no
    more than ``words`` words (the last one may be cut)."""
    parts = text.split()
    if len(parts) <= words:
        return None
    return " ".join(parts[:words])


def cjk_prefix_width(crop: np.ndarray, tokens: int) -> int | None:
    """Width of the line start to read for the first ``tokens`` tokens of a CJK line image
    ``crop`` (h, w[, 3]): ``CHARACTERS_PER_TOKEN * tokens + CJK_MARGIN`` ink heights; None when
    the line is too short for the cut to save anything."""
    _, height = word_gaps(crop)
    if not height:
        return None
    width = (CHARACTERS_PER_TOKEN * tokens + CJK_MARGIN) * height
    if width + CJK_MIN_SAVING * height > crop.shape[1]:
        return None
    return int(width)


def cjk_prefix_widths(crop: np.ndarray, tokens: int) -> list[int]:
    """Widths to read of a CJK line image ``crop`` for its first ``tokens`` tokens when a
    tokenizer verifies each read, narrowest first (:data:`CJK_VERIFIED_CUTS`, then
    :func:`cjk_prefix_width`'s bound); empty when the line is too short for a cut to save
    anything."""
    bound = cjk_prefix_width(crop, tokens)
    if bound is None:
        return []
    _, height = word_gaps(crop)
    narrower = [(per * tokens + margin) * height for per, margin in CJK_VERIFIED_CUTS]
    return [int(width) for width in narrower if width < bound] + [bound]


def first_tokens_read(text: str, tokens: int, tokenize) -> str | None:
    """``text`` read from a CJK line start → that text less its last character (the glyph at
    the cut), when it is mostly CJK and ``tokenize`` (text → pieces) splits it into more than
    ``tokens`` pieces, a lone leading "▁" not counted; else None (read wider, or whole)."""
    keep = text.rstrip()[:-1]
    if not keep or not is_cjk_text(text):
        return None
    pieces = tokenize(keep)
    if len(pieces) > 1 and pieces[0] == SPIECE_UNDERLINE:
        pieces = pieces[1:]
    return keep if len(pieces) > tokens else None


def looks_cjk(crop: np.ndarray) -> bool:
    """Whether the line image ``crop`` has the dense glyph gaps of CJK text (before reading)."""
    gaps, height = word_gaps(crop)
    return bool(height) and len(gaps) / (crop.shape[1] / height) > CJK_GAP_DENSITY


def first_characters(text: str, tokens: int) -> str | None:
    """``text`` read from a CJK line start → its first ``CHARACTERS_PER_TOKEN * tokens + 1``
    characters, or None when it shows no more than that many or is not mostly CJK (a Latin line
    cut where its words were not: read it whole)."""
    keep = CHARACTERS_PER_TOKEN * tokens + 1
    if len(text.rstrip()) <= keep or not is_cjk_text(text):
        return None
    return text[:keep]
