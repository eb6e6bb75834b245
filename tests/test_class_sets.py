"""Class sets checked by name before any work: datasets vs MODEL.ROI_HEADS.NUM_CLASSES vs the
checkpoint's class_names; MODEL.CLASS_MAPPING moves classifier rows; --eval-only needs only the
test sets; evaluation never scores with weights at their random init."""

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import torch
import transformers
from conftest import import_script, write_rectangle_coco
from detectron2.engine import default_argument_parser
from detectron2.modeling import build_model

from ditod import LayoutCheckpointer
from ditod.config import load_config
from ditod.data.class_sets import (
    CDLA_CLASSES,
    ClassSetMismatch,
    map_checkpoint_classes,
    remap_class_rows,
)
from ditod.data.datasets import read_categories

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "configs" / "tiny" / "cascade_layoutlmv3_tiny.yaml"
IMAGE_ONLY = ["MODEL.LAYOUTLMV3.IMAGE_ONLY", "True", "MODEL.LAYOUTLMV3.FUSION.TYPE", ""]
train_net = import_script("tools/train_net.py")


def test_same_classes_map_to_themselves():
    assert map_checkpoint_classes(["a", "b"], ["a", "b"]) == [0, 1]


@pytest.mark.parametrize(
    "checkpoint, dataset, detail",
    [
        (["Text", "Title"], ["text", "title"], r"only in the checkpoint: \['Text', 'Title'\]"),
        (["a", "b"], ["b", "a"], r"same names, different order"),
    ],
)
def test_different_names_without_a_mapping_are_refused(checkpoint, dataset, detail):
    with pytest.raises(
        ClassSetMismatch,
        match=rf"(?s)model.pth was trained on.*{detail}.*"
        r"MODEL.CLASS_MAPPING",
    ):
        map_checkpoint_classes(checkpoint, dataset, source="model.pth")


def test_mapping_names_pairs_and_the_rest_match_by_name():
    checkpoint = ["Text", "Title", "Figure", "Table"]
    sources = map_checkpoint_classes(checkpoint, ["table", "Text", "chart"], [["Table", "table"]])
    assert sources == [3, 0, None]
    with pytest.raises(ClassSetMismatch, match=r"no weights for the dataset's classes \['chart'\]"):
        map_checkpoint_classes(
            checkpoint, ["table", "chart"], [["Table", "table"]], allow_new=False
        )
    with pytest.raises(ClassSetMismatch, match=r"'Tabel' is not a class of"):
        map_checkpoint_classes(checkpoint, ["table"], [["Tabel", "table"]])


def test_classifier_rows_follow_the_mapping():
    """cls_score: K+1 rows (background last); class-specific bbox_pred: 4 rows per class."""
    checkpoint = {
        "roi_heads.box_predictor.cls_score.weight": torch.arange(4.0)[:, None].repeat(1, 2),
        "roi_heads.box_predictor.bbox_pred.bias": torch.arange(12.0),
        "roi_heads.mask_head.predictor.bias": torch.tensor([10.0, 11.0, 12.0]),
    }
    model = {
        "roi_heads.box_predictor.cls_score.weight": torch.full((3, 2), -1.0),
        "roi_heads.box_predictor.bbox_pred.bias": torch.full((8,), -1.0),
        "roi_heads.mask_head.predictor.bias": torch.full((2,), -1.0),
    }
    state, fresh = remap_class_rows(checkpoint, model, [2, None], num_checkpoint_classes=3)
    assert state["roi_heads.box_predictor.cls_score.weight"][:, 0].tolist() == [2, -1, 3]
    assert state["roi_heads.box_predictor.bbox_pred.bias"].tolist() == [
        8,
        9,
        10,
        11,
        -1,
        -1,
        -1,
        -1,
    ]
    assert state["roi_heads.mask_head.predictor.bias"].tolist() == [12, -1]
    assert sorted(fresh) == sorted(checkpoint)


def test_categories_are_read_without_parsing_the_rest(tmp_path):
    """A decoy "categories" string after the real list falls back to a full parse."""
    coco = {
        "categories": [{"id": 1, "name": "text"}],
        "images": [{"id": 1, "file_name": "categories", "width": 1, "height": 1}],
        "annotations": [],
    }
    path = tmp_path / "decoy.json"
    path.write_text(json.dumps(coco))
    assert read_categories(path) == [{"id": 1, "name": "text"}]
    path.write_text(json.dumps({"images": [], "annotations": [], **coco}))
    assert read_categories(path) == [{"id": 1, "name": "text"}]


@pytest.fixture(scope="module")
def checkpoint_10_classes(tmp_path_factory):
    """A tiny image-only detector saved with 10 CDLA-like class names (as the demo's model)."""
    folder = tmp_path_factory.mktemp("ckpt")
    cfg = load_config(TINY, [*IMAGE_ONLY, "MODEL.ROI_HEADS.NUM_CLASSES", "10"])
    torch.manual_seed(0)
    model = build_model(cfg)
    names = list(CDLA_CLASSES)
    LayoutCheckpointer(model, str(folder), class_names=names).save("model_final")
    return folder / "model_final.pth"


def eval_args(tmp_path, weights, *opts) -> list[str]:
    name = f"rect_{uuid.uuid4().hex[:8]}"
    json_file = write_rectangle_coco(tmp_path)  # classes "block", "frame"
    extra = json.dumps([[name, str(json_file), str(tmp_path / "images")]])
    return [
        "--config-file",
        str(TINY),
        "--eval-only",
        *IMAGE_ONLY,
        "DATASETS.EXTRA",
        extra,
        "DATASETS.TRAIN",
        '("no_such_training_set",)',
        "DATASETS.TEST",
        f'("{name}",)',
        "MODEL.WEIGHTS",
        str(weights),
        "OUTPUT_DIR",
        str(tmp_path / "out"),
        *opts,
    ]


def run_eval(args, capsys) -> tuple[int, str]:
    """tools/train_net.py in this process (for errors raised before the run's loggers exist)."""
    args = default_argument_parser().parse_args(args)
    code = train_net.run_tool(train_net.run, args, argv=[])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_eval_only_refuses_a_class_count_mismatch_first(tmp_path, capsys, checkpoint_10_classes):
    args = eval_args(tmp_path, checkpoint_10_classes, "MODEL.ROI_HEADS.NUM_CLASSES", "10")
    code, output = run_eval(args, capsys)
    assert code == 2
    assert "has 2 classes ['block', 'frame'], but MODEL.ROI_HEADS.NUM_CLASSES is 10" in output
    assert "Traceback" not in output and not (tmp_path / "out" / "inference").exists()


def test_eval_only_refuses_other_class_names(tmp_path, capsys, checkpoint_10_classes):
    """Same count, different names: the checkpoint's classes are not the dataset's."""
    args = eval_args(tmp_path, checkpoint_10_classes, "MODEL.ROI_HEADS.NUM_CLASSES", "2")
    code, output = run_eval(args, capsys)
    assert code == 2
    assert "was trained on classes ['Text', 'Title'" in output
    assert "only in the dataset: ['block', 'frame']" in output


def test_eval_only_with_a_mapping_evaluates_the_mapped_classes(tmp_path, checkpoint_10_classes):
    """Only DATASETS.TEST is needed (DATASETS.TRAIN names no dataset); the 10-class head is cut
    to the 2 mapped classes, whose rows are the checkpoint's Table and Figure rows."""
    mapping = '[["Table", "block"], ["Figure", "frame"]]'
    args = eval_args(
        tmp_path,
        checkpoint_10_classes,
        "MODEL.ROI_HEADS.NUM_CLASSES",
        "2",
        "MODEL.CLASS_MAPPING",
        mapping,
    )
    command = [sys.executable, str(ROOT / "tools" / "train_net.py"), *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=ROOT)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert "Table → block, Figure → frame" in output
    assert "Per-category bbox AP" in output and "| block" in output


@pytest.fixture(scope="module")
def hub_folder(tmp_path_factory):
    """A tiny random transformers LayoutLMv3Model saved as the hub saves one."""
    folder = tmp_path_factory.mktemp("hub")
    config = transformers.LayoutLMv3Config(
        hidden_size=96,
        num_hidden_layers=4,
        num_attention_heads=3,
        intermediate_size=192,
        coordinate_size=16,
        shape_size=16,
        vocab_size=300,
    )
    transformers.LayoutLMv3Model(config).save_pretrained(folder)
    return folder


def test_eval_only_refuses_pretrained_weights_with_random_heads(tmp_path, capsys, hub_folder):
    args = eval_args(
        tmp_path,
        hub_folder,
        "MODEL.ROI_HEADS.NUM_CLASSES",
        "2",
        "MODEL.LAYOUTLMV3.CONFIG",
        str(hub_folder),
    )
    code, output = run_eval(args, capsys)
    assert code == 2
    assert "model tensors at their random init" in output
    assert "New by design" in output and "roi_heads.box_predictor.* (" in output
    assert "MODEL.LAYOUTLMV3.ALLOW_RANDOM_INIT True" in output


def test_cli_error_is_one_message_and_debug_brings_the_traceback(tmp_path):
    """A typo in a YAML file (not on the command line) names the file and the close key."""
    config = tmp_path / "mine.yaml"
    config.write_text(f'_BASE_: "{TINY}"\nMODEL:\n  LAYOUTLMV3:\n    FUSION:\n      TYEP: "add"\n')
    command = [sys.executable, str(ROOT / "tools" / "train_net.py"), "--config-file", str(config)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 2
    assert (
        f"error: {config}: unknown config key MODEL.LAYOUTLMV3.FUSION.TYEP (did you mean "
        "MODEL.LAYOUTLMV3.FUSION.TYPE"
    ) in result.stderr
    assert "Traceback" not in result.stderr
    debug = subprocess.run(
        [*command, "--debug"], capture_output=True, text=True, timeout=300, cwd=ROOT
    )
    assert debug.returncode != 0 and "Traceback" in debug.stderr
