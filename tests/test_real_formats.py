"""PubLayNet's and DocLayNet's annotation files load by their built-in names.

The files are written here from the published formats: PubLayNet (``publaynet/val.json``, JPEG
pages under ``publaynet/val/``, categories 1..5 text/title/list/table/figure with an empty
supercategory, polygon segmentations) and DocLayNet core (``COCO/val.json``, PNG pages under
``PNG/``, categories 1..11, extra per-image fields ``doc_category``, ``collection``,
``doc_name``, ``page_no``, ``precedence``, per-annotation ``precedence``).
"""

import json
from pathlib import Path

import pytest
from detectron2.data import DatasetCatalog, MetadataCatalog
from PIL import Image

from ditod.config import load_config
from ditod.data.class_sets import check_class_sets
from ditod.data.datasets import register_layout_datasets
from ditod.data.mapper import LayoutDatasetMapper

ROOT = Path(__file__).resolve().parents[1]
PUBLAYNET = ["text", "title", "list", "table", "figure"]
DOCLAYNET = [
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


def box_polygon(x, y, w, h):
    return [[x, y, x + w, y, x + w, y + h, x, y + h]]


def write_publaynet(root: Path) -> None:
    (root / "publaynet" / "val").mkdir(parents=True)
    images, annotations = [], []
    for image_id, name in ((341427, "PMC4055390_00006.jpg"), (341428, "PMC4055390_00007.jpg")):
        Image.new("RGB", (612, 792), "white").save(root / "publaynet" / "val" / name)
        images.append({"file_name": name, "width": 612, "id": image_id, "height": 792})
        for category_id in range(1, 6):
            x, y, w, h = 50.0, 60.0 + 120 * (category_id - 1), 500.0, 100.0
            annotations.append(
                {
                    "segmentation": box_polygon(x, y, w, h),
                    "area": w * h,
                    "iscrowd": 0,
                    "image_id": image_id,
                    "bbox": [x, y, w, h],
                    "category_id": category_id,
                    "id": len(annotations) + 3378735,
                }
            )
    categories = [{"supercategory": "", "id": i + 1, "name": n} for i, n in enumerate(PUBLAYNET)]
    coco = {"images": images, "annotations": annotations, "categories": categories}
    (root / "publaynet" / "val.json").write_text(json.dumps(coco))


def write_doclaynet(root: Path) -> None:
    core = root / "DocLayNet_core"
    (core / "PNG").mkdir(parents=True)
    (core / "COCO").mkdir()
    name = "c6e8f6ae6b0ab7f6c25d8ec25c1ac6d2ae3bd6b8ca2b8a7a0e2b8e1d1e1a8a4d.png"
    Image.new("RGB", (1025, 1025), "white").save(core / "PNG" / name)
    image = {
        "id": 0,
        "width": 1025,
        "height": 1025,
        "file_name": name,
        "doc_category": "financial_reports",
        "collection": "ann_reports_00_04_fancy",
        "doc_name": "NASDAQ_FFIN_2002.pdf",
        "page_no": 9,
        "precedence": 0,
    }
    annotations = []
    for category_id in range(1, 12):
        x, y, w, h = 80.0, 20.0 + 85 * (category_id - 1), 800.0, 70.0
        annotations.append(
            {
                "id": len(annotations) + 1,
                "image_id": 0,
                "category_id": category_id,
                "bbox": [x, y, w, h],
                "segmentation": box_polygon(x, y, w, h),
                "area": w * h,
                "iscrowd": 0,
                "precedence": 0,
            }
        )
    categories = [{"supercategory": n, "id": i + 1, "name": n} for i, n in enumerate(DOCLAYNET)]
    coco = {"categories": categories, "images": [image], "annotations": annotations}
    (core / "COCO" / "val.json").write_text(json.dumps(coco))


@pytest.mark.parametrize(
    "config, dataset, writer, classes, per_page",
    [
        ("publaynet/cascade_layoutlmv3_image.yaml", "publaynet_val", write_publaynet, PUBLAYNET, 5),
        (
            "doclaynet/cascade_layoutlmv3_image.yaml",
            "doclaynet_val",
            write_doclaynet,
            DOCLAYNET,
            11,
        ),
    ],
)
def test_real_annotation_file_loads_by_its_builtin_name(
    tmp_path, config, dataset, writer, classes, per_page
):
    writer(tmp_path)
    cfg = load_config(
        ROOT / "configs" / config, ["DATASETS.ROOT", str(tmp_path), "MODEL.LAYOUTLMV3.CONFIG", ""]
    )
    if dataset in DatasetCatalog.list():  # registered by another test with another root
        DatasetCatalog.remove(dataset)
        MetadataCatalog.remove(dataset)
    register_layout_datasets(cfg, [dataset])
    assert check_class_sets(cfg, [dataset]) == classes  # before the annotations are parsed
    records = DatasetCatalog.get(dataset)
    assert len(records[0]["annotations"]) == per_page
    assert sorted(a["category_id"] for a in records[0]["annotations"]) == list(range(per_page))
    assert all(len(a["segmentation"][0]) == 8 for a in records[0]["annotations"])
    assert cfg.MODEL.MASK_ON  # unilm's recipe trains the mask head on these polygons
    mapped = LayoutDatasetMapper(cfg, is_train=True)(records[0])
    assert len(mapped["instances"].gt_masks) == per_page
