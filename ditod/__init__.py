"""detectron2 glue for LayoutLMv3 document-layout detection, in detectron2's own shape:

- ``ditod.modeling``: LayoutLMv3 + FPN backbone, text fusion, the VL R-CNN (registered with
  detectron2 when imported; ``add_layoutlmv3_config`` imports it);
- ``ditod.data``: COCO layout datasets and their rules, class sets, the OCR-aware mapper, checks;
- ``ditod.engine``: trainer, optimizer, checkpointer, evaluator, multi-process launch;
- ``ditod.deploy``: predictor, inference over pages, ONNX export, drawing;
- ``ditod.pages``: page images, PDFs and OCR, without torch or detectron2;
- ``ditod.config``, ``ditod.cli``, ``ditod.plots``, ``ditod.compat`` (the detectron2 shims).

``import ditod`` installs the detectron2 shims (each applies as its module loads) and imports
nothing else: the names below load their subpackage on first use, so an OCR worker process
starts without torch or detectron2.
"""

import importlib

from .compat import install_shims

install_shims()  # before anything imports detectron2

_EXPORTS = {
    "LayoutCheckpointer": "ditod.engine",
    "LayoutDatasetMapper": "ditod.data",
    "LayoutEvaluator": "ditod.engine",
    "LayoutTrainer": "ditod.engine",
    "add_layoutlmv3_config": "ditod.config",
    "launch": "ditod.engine",
    "load_config": "ditod.config",
    "merge_options": "ditod.config",
    "register_layout_datasets": "ditod.data",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'ditod' has no attribute {name!r}")
