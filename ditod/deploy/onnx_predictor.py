"""An exported ONNX detector (``tools/export.py``) run by ONNX Runtime, with the interface of
:class:`~ditod.deploy.predictor.LayoutPredictor`."""

import json
import logging
import tempfile
from pathlib import Path

import numpy as np
import torch
from detectron2.modeling.postprocessing import detector_postprocess
from detectron2.structures import Boxes, Instances

from ..config import add_layoutlmv3_config, merge_options
from ..data.mapper import LayoutDatasetMapper
from ..extras import import_extra
from .export import quantize_onnx_int8
from .predictor import LayoutPredictor

__all__ = ["OnnxLayoutPredictor", "read_exported_config"]

logger = logging.getLogger(__name__)

ONNX_PRECISIONS = ("auto", "fp32", "int8")


def _metadata_config(path: Path, metadata: dict, opts=()):
    from detectron2.config import CfgNode, get_cfg

    if not metadata.get("config"):
        raise ValueError(
            f"{path}: no config in its metadata: export the model with tools/export.py"
        )
    cfg = get_cfg()
    add_layoutlmv3_config(cfg)
    cfg.merge_from_other_cfg(CfgNode.load_cfg(metadata["config"]))
    merge_options(cfg, list(opts))
    return cfg


def _read_metadata(path: Path) -> dict[str, str]:
    onnx = import_extra("onnx", "onnx", "the onnxruntime backend")

    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such ONNX model")
    model = onnx.load(str(path), load_external_data=False)
    return {p.key: p.value for p in model.metadata_props}


def read_exported_config(path, opts=()):
    """The config an ONNX file was exported with (its metadata), ``KEY VALUE`` ``opts`` merged
    (e.g. ``MODEL.LAYOUTLMV3.TEXT.TOKENIZER`` where the tokenizer lies on this machine)."""
    path = Path(path)
    return _metadata_config(path, _read_metadata(path), opts)


class OnnxLayoutPredictor:
    """Detections of pages from an exported ONNX detector.

    Pages are mapped with the config stored in the file (test-time resize, OCR JSON → tokens),
    run by ONNX Runtime one at a time, and the boxes scaled back to the page as read, so its
    outputs are those of ``LayoutPredictor`` on the same weights. Score thresholds and
    ``TEST.LAYOUT`` post-processing are those of the export (they are part of the graph).

    Args:
        path: ``.onnx`` file written by :func:`ditod.deploy.export.export_model`.
        opts: ``KEY VALUE`` config overrides for the mapping (not for the graph).
        precision: "auto" or "fp32" run the file as exported (int8 if exported with
            ``--quantize int8``); "int8" runs a float model with int8 linear layers (quantized
            into a temporary file at start). ONNX Runtime has no bf16 kernels for x86 CPUs.
        device: "cpu" or "cuda" (ONNX Runtime's CUDA provider, when installed).
        threads: ONNX Runtime intra-op threads (default: its own, all cores).
    """

    def __init__(
        self,
        path,
        opts=(),
        *,
        precision: str = "auto",
        device: str = "cpu",
        threads: int | None = None,
    ):
        onnxruntime = import_extra("onnxruntime", "onnx", "the onnxruntime backend")
        path = Path(path)
        metadata = _read_metadata(path)
        self.cfg = _metadata_config(path, metadata, opts)
        self._scratch = None
        if precision not in ONNX_PRECISIONS:
            raise ValueError(
                f"precision '{precision}' is not one of {', '.join(ONNX_PRECISIONS)} for ONNX "
                "Runtime"
                + (
                    " (it has no bf16 on x86 CPUs: use --backend pytorch)"
                    if precision == "bf16"
                    else ""
                )
            )
        exported = metadata.get("quantize") or "fp32"
        if precision == "fp32" and exported == "int8":
            raise ValueError(f"{path} holds int8 weights: export it without --quantize for fp32")
        self.precision = "int8" if "int8" in (precision, exported) else "fp32"
        logger.info(
            "ONNX Runtime precision: %s (%s)",
            self.precision,
            f"exported {exported}" if precision in ("auto", exported) else "quantized at load",
        )
        if precision == "int8" and exported != "int8":
            self._scratch = tempfile.TemporaryDirectory(prefix="ditod-int8-")
            logger.info("quantizing %s to int8 (dynamic, MatMul/Gemm)", path)
            quantized = Path(self._scratch.name) / path.name
            quantize_onnx_int8(path, quantized)
            path = quantized
        options = onnxruntime.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        providers = ["CPUExecutionProvider"]
        if device.startswith("cuda"):
            if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
                raise ValueError(
                    "device cuda: this onnxruntime has no CUDA provider (pip install "
                    "onnxruntime-gpu)"
                )
            providers.insert(0, "CUDAExecutionProvider")
        self.session = onnxruntime.InferenceSession(str(path), options, providers=providers)
        self.input_names = tuple(json.loads(metadata["inputs"]))
        names = json.loads(metadata.get("class_names") or "[]")
        num_classes = self.cfg.MODEL.ROI_HEADS.NUM_CLASSES
        self.class_names = (
            names if len(names) == num_classes else [f"class {i}" for i in range(num_classes)]
        )
        self.mapper = LayoutDatasetMapper(self.cfg, is_train=False)
        self.uses_text = "input_ids" in self.input_names
        if self.uses_text and self.mapper.tokenizer is None:
            raise ValueError(f"{path}: a text-fused model, but its config maps no text")

    map_page = LayoutPredictor.map_page  # the same test-time mapping, with this file's config

    def __call__(self, inputs: list[dict]) -> list[Instances]:
        """Per page ``Instances`` on the CPU (``pred_boxes`` XYXY in the page's pixels as read,
        ``scores``, ``pred_classes``), as :meth:`LayoutPredictor.__call__`."""
        results = []
        for page in inputs:
            feeds = {"image": page["image"].float().numpy()}
            if self.uses_text:
                feeds["input_ids"] = page["input_ids"].numpy().astype(np.int64)
                feeds["bbox"] = page["bbox"].numpy().astype(np.int64)
            boxes, classes, scores = self.session.run(None, feeds)
            instances = Instances(tuple(page["image"].shape[1:]))
            instances.pred_boxes = Boxes(torch.from_numpy(boxes))
            instances.scores = torch.from_numpy(scores)
            instances.pred_classes = torch.from_numpy(classes)
            results.append(detector_postprocess(instances, page["height"], page["width"]))
        return results
