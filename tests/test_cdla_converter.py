"""datasets/cdla_to_coco.py: labelme → COCO with the 10 CDLA classes and no background."""

import json
import subprocess
import sys
from pathlib import Path

from PIL import Image

from ditod.data.datasets import load_layout_coco_json

SCRIPT = Path(__file__).resolve().parents[1] / "datasets" / "cdla_to_coco.py"


def labelme(folder, name, shapes):
    Image.new("RGB", (200, 300), "white").save(folder / f"{name}.jpg")
    page = {"imagePath": f"{name}.jpg", "imageWidth": 200, "imageHeight": 300, "shapes": shapes}
    (folder / f"{name}.json").write_text(json.dumps(page, ensure_ascii=False))


def run(*args):
    return subprocess.run(
        [sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True
    )


def test_converts_without_background(tmp_path):
    split = tmp_path / "val"
    split.mkdir()
    labelme(
        split,
        "val_0001",
        [
            {
                "label": "Title",
                "points": [[10, 10], [190, 10], [190, 40], [10, 40]],
                "shape_type": "polygon",
            },
            {
                "label": "Figure caption",
                "points": [[20, 200], [180, 230]],
                "shape_type": "rectangle",
            },
        ],
    )
    result = run("--cdla-root", tmp_path, "--splits", "val")
    assert result.returncode == 0, result.stderr
    coco = json.loads((tmp_path / "val.json").read_text())
    assert [c["name"] for c in coco["categories"]][:4] == [
        "Text",
        "Title",
        "Figure",
        "Figure caption",
    ]
    assert all(c["id"] >= 1 and "background" not in c["name"] for c in coco["categories"])
    assert len(coco["categories"]) == 10
    boxes = {a["category_id"]: a["bbox"] for a in coco["annotations"]}
    assert boxes == {2: [10.0, 10.0, 180.0, 30.0], 4: [20.0, 200.0, 160.0, 30.0]}
    dicts = load_layout_coco_json(tmp_path / "val.json", split, dataset_name="cdla_conv_test")
    assert dicts[0]["file_name"] == str(split / "val_0001.jpg")


def test_unknown_label_names_the_file(tmp_path):
    (tmp_path / "train").mkdir()
    labelme(tmp_path / "train", "p", [{"label": "Sidebar", "points": [[0, 0], [5, 5]]}])
    result = run("--cdla-root", tmp_path, "--splits", "train")
    assert result.returncode != 0
    assert "p.json: unknown label 'Sidebar'" in result.stderr
    assert not (tmp_path / "train.json").exists()
