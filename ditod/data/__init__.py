"""Data: COCO layout datasets by config and the rules they are read by, class sets, the
OCR-aware dataset mapper, and the dataset checks."""

from .annotation_rules import read_coco
from .class_sets import ClassSetMismatch, check_class_sets
from .dataset_check import check_config_datasets, check_dataset
from .datasets import load_layout_coco_json, register_layout_dataset, register_layout_datasets
from .mapper import LayoutDatasetMapper, build_page_tokenizer

__all__ = [
    "ClassSetMismatch",
    "LayoutDatasetMapper",
    "build_page_tokenizer",
    "check_class_sets",
    "check_config_datasets",
    "check_dataset",
    "load_layout_coco_json",
    "read_coco",
    "register_layout_dataset",
    "register_layout_datasets",
]
