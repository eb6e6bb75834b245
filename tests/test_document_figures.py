"""The synthetic documents' pictures (ditod.data.document_figures): composite figures whose
panels fill the figure with their letters read as text, diagrams whose labels fit, photo-like
pictures, and a clear error for a kind that does not exist."""

import random
import re

import numpy as np
import pytest

from ditod.data.document_figures import DIAGRAM_LABELS, FIGURE_KINDS, figure_image

INK = 160


def ink_of(image) -> np.ndarray:
    return np.asarray(image.convert("L")) < INK


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_composite_figures_fill_their_box_and_their_panel_letters_are_text(seed):
    """A composite's panels reach the figure's edges (its layout box is the picture's), its
    panel letters ("A", "a" or "(a)", in order from the first) are OCR lines on ink at the top
    left of their panels, and every line of its text has ink."""
    image, text = figure_image(420, 300, random.Random(seed), kind="composite")
    assert image.size == (420, 300)
    content = np.asarray(image.convert("L")) < 250
    rows, cols = np.nonzero(content)
    assert cols.min() <= 4 and cols.max() >= 420 - 8, (cols.min(), cols.max())
    assert rows.min() <= 4 and rows.max() >= 300 - 12, (rows.min(), rows.max())
    letters = [
        (words, box)
        for words, box in zip(text.words, text.boxes)
        if re.fullmatch(r"[A-F]|[a-f]|\([a-f]\)", words)
    ]
    names = [words.strip("()").lower() for words, _ in letters]
    assert len(names) >= 2 and names == list("abcdef"[: len(names)]), names
    ink = ink_of(image)
    for x, y, w, h in text.boxes:
        assert ink[y : y + h, x : x + w].any(), (x, y, w, h)
    first = letters[0][1]
    assert first[0] <= 4 and first[1] <= 4, first  # the first panel's letter at the top left


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4, 5])
def test_diagram_labels_are_text_and_do_not_overlap(seed):
    """A diagram's labels are OCR lines, each a label of the vocabulary, on ink, and no two
    overlap: as many nodes as fit the picture."""
    image, text = figure_image(300, 160, random.Random(seed), kind="diagram")
    assert len(text.words) >= 2 and set(text.words) <= set(DIAGRAM_LABELS), text.words
    ink = ink_of(image)
    for x, y, w, h in text.boxes:
        assert ink[y : y + h, x : x + w].any(), (x, y, w, h)
    for i, (x, y, w, h) in enumerate(text.boxes):
        for u, v, p, q in text.boxes[i + 1 :]:
            overlap = min(x + w, u + p) - max(x, u) > 0 and min(y + h, v + q) - max(y, v) > 0
            assert not overlap, text.boxes


def test_photos_have_no_text_and_every_kind_renders():
    for kind in FIGURE_KINDS:
        image, text = figure_image(240, 160, random.Random(7), kind=kind)
        assert image.size == (240, 160) and image.mode == "RGB"
        assert len(text.boxes) == len(text.words)
        if kind == "photo":
            assert text.boxes == []
        else:
            assert text.boxes, kind


def test_an_unknown_figure_kind_is_named():
    with pytest.raises(ValueError, match=r"'chart'.*plot, panels, composite, diagram, photo"):
        figure_image(200, 100, random.Random(0), kind="chart")
