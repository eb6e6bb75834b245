"""Column-aware reading order of OCR segments."""

import numpy as np

from layoutlmv3 import OCRPageTokenizer
from layoutlmv3.reading_order import column_reading_order, find_column_split


def two_column_page():
    """Title across the page, 4 lines per column, a footer across the page."""
    boxes = [[100, 950, 900, 980]]  # footer first, as an OCR engine might return it
    boxes += [[520, 200 + 60 * i, 950, 240 + 60 * i] for i in range(4)]  # right column: 1..4
    boxes += [[50, 200 + 60 * i, 480, 240 + 60 * i] for i in range(4)]  # left column: 5..8
    boxes += [[100, 50, 900, 120]]  # title: 9
    return boxes


def test_two_columns_read_left_then_right_between_spanning_segments():
    boxes = two_column_page()
    assert 480 <= find_column_split(np.array(boxes), 1000) <= 520
    assert column_reading_order(boxes, 1000) == [9, 5, 6, 7, 8, 1, 2, 3, 4, 0]


def test_one_column_page_reads_top_down():
    boxes = [[50, 300, 950, 340], [50, 100, 950, 140], [50, 200, 400, 240], [500, 200, 950, 240]]
    assert find_column_split(np.array(boxes), 1000) is None
    assert column_reading_order(boxes, 1000) == [1, 2, 3, 0]


def test_reading_order_is_applied_before_the_token_cap(bpe_folder):
    boxes = two_column_page()
    page = {
        "words": ["word"] * len(boxes),
        "W": 1000,
        "H": 1000,
        "bbox": [[x0, y0, x1 - x0, y1 - y0] for x0, y0, x1, y1 in boxes],
    }
    ordered = OCRPageTokenizer(bpe_folder, max_tokens=1, reading_order="columns")(page)
    as_returned = OCRPageTokenizer(bpe_folder, max_tokens=1)(page)
    assert ordered.bbox[1].tolist() == [100, 50, 900, 120]  # the title
    assert as_returned.bbox[1].tolist() == [100, 950, 900, 980]  # the footer


def test_a_vertical_margin_line_is_read_last_and_leaves_the_columns_alone():
    boxes = two_column_page()
    stamp = [[10, 300, 28, 700], [12, 90, 28, 290]]  # up the left margin, read in two pieces
    order = column_reading_order(boxes + stamp, 1000)
    assert order == [*column_reading_order(boxes, 1000), 10, 11]  # left to right, then down
    # as tall as a column of text, but 20% of the page wide: a block, not a line
    figure = [[300, 200, 500, 1000]]
    assert column_reading_order(boxes + figure, 1000)[-1] != 10
