"""What a user gets from a page: layout post-processing (per-class thresholds, suppression
across classes) inside the model, regions in reading order with their text, captions merged
into their figures and tables, the page as Markdown, and the held-out pages counted as a user
sees them."""

import json

import pytest
import torch
from detectron2.structures import Boxes, Instances

from ditod.data.class_sets import CDLA_CLASSES
from ditod.deploy.regions import merge_captions, page_markdown, page_regions, region_role
from ditod.engine.page_match import PageMatch, match_page, match_predictions
from ditod.modeling.layout_postprocess import LayoutPostprocess

TEXT, TITLE, TABLE = 0, 1, 2


def instances(rows) -> Instances:
    """(x0, y0, x1, y1, score, class) rows as one page's detections."""
    result = Instances((1000, 800))
    data = torch.tensor(rows, dtype=torch.float32).reshape(-1, 6)
    result.pred_boxes = Boxes(data[:, :4])
    result.scores = data[:, 4]
    result.pred_classes = data[:, 5].long()
    return result


def kept(post, rows) -> list[tuple]:
    out = post(instances(rows))
    return [
        (*(round(v, 2) for v in b), round(float(s), 2), int(c))
        for b, s, c in zip(out.pred_boxes.tensor.tolist(), out.scores, out.pred_classes)
    ]


def test_per_class_thresholds_drop_only_their_class():
    post = LayoutPostprocess(3, score_thresholds=[0.5, 0.8, 0.3])
    rows = [
        (0, 0, 10, 10, 0.6, TEXT),
        (0, 20, 10, 30, 0.7, TITLE),
        (0, 40, 10, 50, 0.35, TABLE),
        (0, 60, 10, 70, 0.45, TEXT),
    ]
    assert kept(post, rows) == [(0, 0, 10, 10, 0.6, TEXT), (0, 40, 10, 50, 0.35, TABLE)]


def test_a_box_inside_a_larger_one_of_another_class_goes_whatever_its_score():
    post = LayoutPostprocess(3, contained=0.9)
    table = (100, 100, 500, 400, 0.6, TABLE)
    inside = (120, 120, 300, 140, 0.95, TEXT)  # a table cell read as text
    beside = (100, 420, 500, 480, 0.9, TEXT)
    same_class = (110, 110, 200, 130, 0.7, TABLE)  # same class: NMS's business, kept here
    half_out = (400, 200, 600, 220, 0.8, TEXT)  # half of it outside the table
    assert kept(post, [table, inside, beside, same_class, half_out]) == [
        table,
        beside,
        same_class,
        half_out,
    ]


def test_overlapping_boxes_of_different_classes_keep_the_higher_score():
    post = LayoutPostprocess(3, cross_class_iou=0.5)
    paragraph = (0, 0, 100, 50, 0.9, TEXT)
    as_title = (0, 2, 100, 52, 0.6, TITLE)  # IoU 0.92 with the paragraph
    as_table = (50, 0, 150, 50, 0.8, TABLE)  # IoU 0.33: kept
    third = (1, 1, 101, 51, 0.5, TABLE)  # beaten by the paragraph, not by the (dropped) title
    assert kept(post, [as_title, paragraph, as_table, third]) == [paragraph, as_table]


def test_layout_keys_are_checked():
    with pytest.raises(ValueError, match="has 2 values for 3 classes"):
        LayoutPostprocess(3, score_thresholds=[0.5, 0.5])
    with pytest.raises(ValueError, match=r"go below MODEL\.ROI_HEADS\.SCORE_THRESH_TEST 0\.5"):
        LayoutPostprocess(2, score_thresholds=[0.3, 0.7], base_threshold=0.5)
    with pytest.raises(ValueError, match=r"CROSS_CLASS_IOU must be in 0\.\.1"):
        LayoutPostprocess(2, cross_class_iou=1.5)
    assert not LayoutPostprocess(2).active


def detection(category, box, score=0.9):
    return {"category": category, "category_id": 0, "score": score, "bbox": list(box)}


# A two-column page, 600 px wide: title across, two paragraphs per column, a figure with its
# caption in the right column, a footer.
PAGE = [
    detection("Footer", (280, 960, 320, 975)),
    detection("Text", (320, 100, 580, 200)),  # right column, first
    detection("Figure caption", (320, 420, 580, 440)),
    detection("Text", (20, 100, 280, 300)),  # left column, first
    detection("Title", (20, 20, 580, 60)),
    detection("Figure", (320, 220, 580, 410)),
    detection("Text", (20, 320, 280, 500)),
]
LINES = {  # OCR lines: [x, y, w, h], text
    "Layout of pages": (30, 30, 300, 20),
    "Left one a.": (25, 110, 250, 15),
    "Left one b.": (25, 130, 250, 15),
    "Left two.": (25, 330, 250, 15),
    "Right one.": (325, 110, 250, 15),
    "Figure 1: a chart.": (325, 422, 250, 15),
    "7": (290, 962, 20, 10),
    "axis": (330, 380, 30, 10),  # inside the figure
}


def ocr_page():
    return {"words": list(LINES), "bbox": [list(b) for b in LINES.values()], "W": 600, "H": 1000}


def test_regions_come_in_reading_order_with_their_text():
    regions = page_regions(PAGE, 600, ocr_page())
    order = [(r["category"], r["text"]) for r in regions]
    assert order == [
        ("Title", "Layout of pages"),
        ("Text", "Left one a. Left one b."),
        ("Text", "Left two."),
        ("Text", "Right one."),
        ("Figure", "axis"),
        ("Figure caption", "Figure 1: a chart."),
        ("Footer", "7"),
    ]
    assert [r["role"] for r in regions] == [
        "title",
        "text",
        "text",
        "text",
        "figure",
        "caption",
        "furniture",
    ]
    # OCR of a page read at half the size lands in the same regions
    half = ocr_page()
    half.update(bbox=[[v / 2 for v in b] for b in half["bbox"]], W=300, H=500)
    assert [r["text"] for r in page_regions(PAGE, 600, half)] == [t for _, t in order]


def test_captions_merge_into_their_figure_and_the_page_reads_as_markdown():
    regions = merge_captions(page_regions(PAGE, 600, ocr_page()))
    assert [r["category"] for r in regions] == ["Title", "Text", "Text", "Text", "Figure", "Footer"]
    assert regions[4]["caption"] == {
        "bbox": [320, 420, 580, 440],
        "score": 0.9,
        "text": "Figure 1: a chart.",
    }
    assert page_markdown(regions) == (
        "# Layout of pages\n\nLeft one a. Left one b.\n\nLeft two.\n\nRight one.\n\n"
        "*[Figure]* Figure 1: a chart.\n"
    )


def test_a_caption_goes_to_the_object_right_above_or_below_it_in_its_column():
    regions = page_regions(
        [
            detection("Figure", (20, 100, 280, 300)),
            detection("Figure caption", (20, 310, 280, 330)),  # its own, 10 px below
            detection("Figure caption", (20, 336, 280, 356)),  # next, 36 px: farther, and taken
            detection("Figure caption", (320, 310, 580, 330)),  # other column: no figure there
            detection("Table caption", (20, 60, 280, 80)),  # above the figure, but not a table
        ],
        600,
    )
    merged = merge_captions(regions)
    figure = next(r for r in merged if r["category"] == "Figure")
    assert figure["caption"]["bbox"] == [20, 310, 280, 330]
    assert sum(r["role"] == "caption" for r in merged) == 3  # the others stay regions


def test_roles_of_the_class_sets_users_bring():
    publaynet = ["text", "title", "list", "table", "figure"]
    doclaynet = [
        "Caption",
        "Footnote",
        "Formula",
        "List-item",
        "Page-footer",
        "Page-header",
        "Picture",
        "Section-header",
        "Table",
        "Text",
        "Title",
    ]
    cdla = list(CDLA_CLASSES)
    assert [region_role(c) for c in publaynet] == ["text", "title", "list", "table", "figure"]
    assert [region_role(c) for c in doclaynet] == [
        "caption",
        "text",
        "equation",
        "list",
        "furniture",
        "furniture",
        "figure",
        "heading",
        "table",
        "text",
        "title",
    ]
    assert [region_role(c) for c in cdla] == [
        "text",
        "title",
        "figure",
        "caption",
        "table",
        "caption",
        "furniture",
        "furniture",
        "text",
        "equation",
    ]


def test_the_model_applies_the_layout_keys_at_inference():
    from detectron2.modeling import build_model
    from detectron2.structures import pairwise_iou
    from test_inference import tiny_cfg

    cfg = tiny_cfg()
    torch.manual_seed(0)
    plain = build_model(cfg).eval()
    page = {
        "image": torch.randint(0, 255, (3, 128, 160), dtype=torch.uint8).float(),
        "height": 256,
        "width": 320,
    }
    with torch.no_grad():
        before = plain([page])[0]["instances"]
    threshold = before.scores[before.pred_classes == 1].median().item()  # half of class 1 goes
    cfg.TEST.LAYOUT.CROSS_CLASS_IOU = 0.3
    cfg.TEST.LAYOUT.SCORE_THRESHOLDS = [0.0, threshold]
    model = build_model(cfg).eval()
    model.load_state_dict(plain.state_dict())
    with torch.no_grad():
        after = model([page])[0]["instances"]

    def clashes(found):
        iou = pairwise_iou(found.pred_boxes, found.pred_boxes)
        other = found.pred_classes[:, None] != found.pred_classes[None, :]
        return int(((iou > 0.3) & other).sum())

    assert clashes(before) > 0 and clashes(after) == 0
    assert (after.scores[after.pred_classes == 1] >= threshold).all()
    assert 0 < len(after) < len(before)
    assert after.image_size == (256, 320)  # still rescaled to the page as given


def test_held_out_matching_counts_found_blocks_and_false_boxes(tmp_path):
    """One-to-one, same class, IoU >= 0.5, highest score first; below the shown threshold is
    not shown."""
    gt = [("Text", [0, 0, 100, 50]), ("Text", [0, 60, 100, 110]), ("Title", [0, 120, 100, 140])]
    shown = [
        ("Text", 0.9, [0, 0, 100, 50]),  # finds the first paragraph
        ("Text", 0.8, [2, 0, 100, 52]),  # the same paragraph again: false
        ("Title", 0.7, [0, 60, 100, 110]),  # a paragraph called a title: false
        ("Text", 0.6, [0, 70, 100, 120]),  # IoU 0.67 with the second paragraph: found
    ]
    assert match_page(gt, shown) == PageMatch(found=[0, 1], false=[1, 2])
    assert match_page(gt, []) == PageMatch([], []) and match_page([], shown).false == [0, 1, 2, 3]
    # Another label set: "Paragraph" counts as Text or List, a "Header" is not counted at all.
    relabelled = [("Paragraph" if c == "Text" else c, s, b) for c, s, b in shown]
    relabelled.append(("Header", 0.95, [0, 150, 100, 160]))
    class_map = {"Paragraph": ("Text", "List"), "Title": ("Title",), "Header": ()}
    assert match_page(gt, relabelled, class_map=class_map) == PageMatch([0, 1], [1, 2])
    assert match_page(gt, relabelled) == PageMatch([], [4, 0, 1, 2, 3])  # no map: names differ

    coco = {
        "images": [{"id": 1, "file_name": "p.png", "width": 200, "height": 200}],
        "categories": [{"id": 1, "name": "Text"}, {"id": 2, "name": "Title"}],
        "annotations": [
            {
                "id": k + 1,
                "image_id": 1,
                "category_id": 1 if c == "Text" else 2,
                "bbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]],
            }
            for k, (c, b) in enumerate(gt)
        ],
    }
    (tmp_path / "gt.json").write_text(json.dumps(coco))
    (tmp_path / "predictions").mkdir()
    detections = [{"category": c, "score": s, "bbox": b} for c, s, b in shown]
    detections.append({"category": "Title", "score": 0.3, "bbox": [0, 120, 100, 140]})
    (tmp_path / "predictions" / "p.json").write_text(json.dumps({"detections": detections}))
    result = match_predictions([tmp_path / "gt.json"], tmp_path / "predictions", 0.5)
    assert (result["matched"], result["gt"], result["false"], result["shown"]) == (2, 3, 2, 4)
    assert result["per_class"]["Title"] == {"gt": 1, "matched": 0, "shown": 1, "false": 1}
    assert abs(result["matched_fraction"] - 2 / 3) < 1e-9 and result["false_fraction"] == 0.5
    assert result["pages_without_detection"] == 0


def test_chinese_lines_join_without_spaces_and_latin_words_keep_theirs():
    """A Chinese paragraph broken across lines reads as one sentence in the regions and the
    Markdown; a space stays wherever Latin text meets a line break."""
    from ditod.pages.cjk import join_lines

    assert join_lines(["文档版面分析是", "一项重要任务。", "LayoutLMv3 模型", "works well"]) == (
        "文档版面分析是一项重要任务。 LayoutLMv3 模型 works well"
    )
    lines = {"文档版面分析是": (25, 110, 250, 15), "一项重要任务。": (25, 130, 250, 15)}
    page = {"words": list(lines), "bbox": [list(b) for b in lines.values()], "W": 600, "H": 1000}
    detections = [{"category": "Text", "category_id": 0, "score": 0.9, "bbox": [20, 100, 290, 150]}]
    (region,) = page_regions(detections, 600, page)
    assert region["text"] == "文档版面分析是一项重要任务。"
    assert page_markdown([region]) == "文档版面分析是一项重要任务。\n"
