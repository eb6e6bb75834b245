"""Overlays: class labels in Chinese are drawn with their glyphs, not as missing-glyph boxes."""

import warnings

import numpy as np
import pytest

from ditod.deploy.visualization import draw_detections
from ditod.fonts import cjk_fonts


def overlay(class_names):
    page = np.full((200, 300, 3), 255, dtype=np.uint8)
    detection = {"bbox": [40.0, 60.0, 200.0, 80.0], "category_id": 0, "score": 0.9}
    return draw_detections(page, [detection], class_names)


@pytest.mark.skipif(not cjk_fonts(), reason="no CJK font installed (scripts/install.sh adds one)")
def test_chinese_class_names_are_drawn_with_their_glyphs():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # matplotlib warns "Glyph ... missing from font(s)"
        text, title = overlay(["正文"]), overlay(["标题"])
    # Missing glyphs would draw both labels as the same two boxes.
    differing = np.abs(text.astype(int) - title.astype(int)).sum(axis=2) > 0
    assert differing.sum() > 20
    assert not np.array_equal(overlay(["Text"]), overlay(["Title"]))
