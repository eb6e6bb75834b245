"""A page's detections as a document: regions in reading order with the text inside them, and
the page as Markdown.

Reading order is :func:`layoutlmv3.reading_order.column_reading_order`, the order the tokenizer
gives OCR lines (``TEXT.READING_ORDER columns``): on a two-column page, bands between full-width
regions, each read left column then right. A region's text is the page's OCR or PDF-text lines
whose centre lies inside it, in the same order; a line inside several regions goes to the
smallest. Roles come from class names (PubLayNet, CDLA, DocLayNet and the like): see
:func:`region_role`.
"""

import numpy as np

from layoutlmv3.reading_order import column_reading_order
from layoutlmv3.segments import usable_segments

from ..pages.cjk import join_lines

__all__ = ["merge_captions", "page_markdown", "page_regions", "region_role"]

# Regions that may span a two-column page's gutter (title, wide figures, footer) before it is
# read as one column; text lines use 0.2.
REGION_MAX_CROSSING = 0.4

ROLES = (
    ("caption", ("caption",)),
    ("title", ("title",)),
    ("heading", ("section-header", "section header", "heading", "subtitle")),
    ("list", ("list",)),
    ("table", ("table",)),
    ("figure", ("figure", "picture", "image", "chart")),
    ("equation", ("equation", "formula")),
    ("furniture", ("page-header", "page-footer", "header", "footer")),
)


def region_role(class_name: str) -> str:
    """The role of a class in the page's text: caption, title, heading, list, table, figure,
    equation, furniture (page header/footer) or text (everything else)."""
    name = class_name.lower()
    for role, keys in ROLES:
        if any(key in name for key in keys):
            return role
    return "text"


def page_regions(detections: list[dict], width: float, ocr_page: dict | None = None) -> list:
    """``detections`` (:func:`~ditod.deploy.inference.page_detections`) in reading order, each
    with its ``role`` and, when ``ocr_page`` (an OCR JSON dict) is given, its ``text``."""
    if not detections:
        return []
    boxes = np.array([d["bbox"] for d in detections], dtype=np.float64)
    order = column_reading_order(boxes, width, REGION_MAX_CROSSING)
    regions = [{**detections[i], "role": region_role(detections[i]["category"])} for i in order]
    if ocr_page is None:
        return regions
    lines = [(np.array(box), text) for text, box in usable_segments(ocr_page)[0]]
    if lines:
        scale = width / float(ocr_page.get("W") or width)  # OCR of another size: rescale
        line_boxes = np.stack([box for box, _ in lines]) * scale
        order = column_reading_order(line_boxes, width)
        centres = (line_boxes[:, :2] + line_boxes[:, 2:]) / 2
        region_boxes = np.array([r["bbox"] for r in regions], dtype=np.float64)
        inside = (
            (centres[:, None, 0] >= region_boxes[None, :, 0])
            & (centres[:, None, 0] <= region_boxes[None, :, 2])
            & (centres[:, None, 1] >= region_boxes[None, :, 1])
            & (centres[:, None, 1] <= region_boxes[None, :, 3])
        )
        sizes = region_boxes[:, 2:] - region_boxes[:, :2]
        areas = sizes[:, 0] * sizes[:, 1]
        owner = np.where(inside.any(1), np.where(inside, areas[None, :], np.inf).argmin(1), -1)
        texts = [[] for _ in regions]
        for line in order:
            if owner[line] >= 0:
                texts[owner[line]].append(lines[line][1])
    else:
        texts = [[] for _ in regions]
    for region, text in zip(regions, texts):
        region["text"] = join_lines(text)
    return regions


def merge_captions(regions: list[dict]) -> list[dict]:
    """Each caption region moved into the figure or table it belongs to (``caption``: its
    text, bbox and score) and out of the list: an object of the kind its class names ("Figure
    caption" → "Figure"; any figure or table for a plain "Caption") in an overlapping column,
    at most two caption heights above or below it. Pairs are made closest first, one caption
    per object; captions without one (alone in the text flow) stay regions."""
    objects = [r for r in regions if r["role"] in ("figure", "table")]
    pairs = []
    for c, caption in enumerate(regions):
        if caption["role"] != "caption":
            continue
        kind = caption["category"].lower().replace("caption", "").strip()
        x0, y0, x1, y1 = caption["bbox"]
        for o, target in enumerate(objects):
            if kind and target["category"].lower() != kind:
                continue
            tx0, ty0, tx1, ty1 = target["bbox"]
            gap = max(ty0 - y1, y0 - ty1, 0)
            if min(x1, tx1) > max(x0, tx0) and gap <= 2 * (y1 - y0):
                pairs.append((gap, c, o))
    merged, taken = set(), set()
    for _, c, o in sorted(pairs):
        if c not in merged and o not in taken:
            caption = regions[c]
            objects[o]["caption"] = {
                k: caption[k] for k in ("bbox", "score", "text") if k in caption
            }
            merged.add(c)
            taken.add(o)
    return [region for i, region in enumerate(regions) if i not in merged]


def page_markdown(regions: list[dict]) -> str:
    """The page as Markdown, regions in order: title ``#``, headings ``##``, list items
    ``- ``, equations ``$$ … $$``, tables and figures as placeholders with their captions; page
    headers and footers left out."""
    blocks = []
    for region in regions:
        role, text = region["role"], region.get("text", "").strip()
        caption = region.get("caption", {}).get("text", "").strip()
        if role == "furniture":
            continue
        if role in ("table", "figure"):
            label = "Table" if role == "table" else "Figure"
            blocks.append(f"*[{label}]*" + (f" {caption}" if caption else ""))
        elif not text:
            continue
        elif role == "title":
            blocks.append(f"# {text}")
        elif role == "heading":
            blocks.append(f"## {text}")
        elif role == "list":
            blocks.append(f"- {text}")
        elif role == "equation":
            blocks.append(f"$$ {text} $$")
        elif role == "caption":
            blocks.append(f"*{text}*")
        else:
            blocks.append(text)
    return "\n\n".join(blocks) + "\n"
