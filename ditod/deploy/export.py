"""Export of a detector, image-only or text-fused, to ONNX, traced through detectron2's
tracing path, optionally with int8 weights.

The exported graph is :class:`PageDetector`: one page's tensors in, its raw detections out. The
file also carries the config it was built with and the class names (ONNX metadata), so inference
needs only the file (:mod:`ditod.deploy.onnx_predictor`, ``tools/infer.py --backend
onnxruntime``). ONNX is the one export format: it is what a backend here runs.
"""

import json
import os
import warnings
from pathlib import Path
from unittest import mock

import torch
from detectron2.modeling.roi_heads import cascade_rcnn
from torch import nn

from ..extras import import_extra

__all__ = [
    "OUTPUT_NAMES",
    "PageDetector",
    "export_model",
    "quantize_onnx_int8",
]

OUTPUT_NAMES = ("boxes", "classes", "scores")
ONNX_OPSET = 17
# What int8 replaces: detectron2's conv layers and the transformer's linears (MatMul/Gemm).
# ONNX Runtime's ConvInteger is slower than its float Conv on CPU, so convolutions stay float.
ONNX_INT8_OPS = ("MatMul", "Gemm")


class PageDetector(nn.Module):
    """A detector as a function of one page's tensors: the form it is exported in.

    ``forward(image, input_ids, bbox)``: ``image`` (3, H, W) float in ``INPUT.FORMAT``, resized
    as at test time (``INPUT.MIN/MAX_SIZE_TEST``, any H and W); for a text-fused model also
    ``input_ids`` (L,) and ``bbox`` (L, 4) in 0..1000 of the image, as the test-time mapper makes
    them (any L ≥ 1). Returns ``boxes`` (N, 4) XYXY in the image's pixels, ``classes`` (N,) and
    ``scores`` (N,), after ``TEST.LAYOUT`` post-processing.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.uses_text = bool(getattr(model, "use_text", False))
        self.eval()  # torch.onnx.export puts the wrapper (and so the model) back in its mode

    @property
    def input_names(self) -> tuple[str, ...]:
        return ("image", "input_ids", "bbox") if self.uses_text else ("image",)

    def example_inputs(self, page: dict) -> tuple[torch.Tensor, ...]:
        """The inputs of one test-time mapper output (``{"image", "input_ids", "bbox", …}``)."""
        missing = [name for name in self.input_names if name not in page]
        if missing:
            raise ValueError(
                f"a text-fused model is traced on a page with text: the sample page has no "
                f"{', '.join(missing)} (give it OCR JSON)"
            )
        image = page["image"].float()
        return (image, *(page[name] for name in self.input_names[1:]))

    def forward(self, image, input_ids=None, bbox=None):
        page = {"image": image}
        if input_ids is not None:
            page.update(input_ids=input_ids, bbox=bbox)
        instances = self.model.inference([page], do_postprocess=False)[0]
        return instances.pred_boxes.tensor, instances.pred_classes, instances.scores


class _IdentityGradientScale:
    """``cascade_rcnn._ScaleGradient`` while tracing: a Python autograd function that only
    scales gradients, so the identity at inference (detectron2 after v0.6 skips it outside
    training); a traced graph cannot hold the Python function."""

    @staticmethod
    def apply(features, scale):
        return features


def quantize_onnx_int8(source, target) -> None:
    """Write ``source`` (an ONNX detector) to ``target`` with ONNX Runtime's dynamic int8
    quantization of its MatMul/Gemm weights (per channel; activations quantized at run time)."""
    quantization = import_extra("onnxruntime.quantization", "onnx", "int8 ONNX export")
    QuantType, quantize_dynamic = quantization.QuantType, quantization.quantize_dynamic

    quantize_dynamic(
        source,
        target,
        op_types_to_quantize=list(ONNX_INT8_OPS),
        weight_type=QuantType.QInt8,
        per_channel=True,
    )


def _write_onnx(detector: PageDetector, inputs, path: Path, metadata: dict, quantize) -> None:
    onnx = import_extra("onnx", "onnx", "ONNX export")

    dynamic = {
        "image": {1: "height", 2: "width"},
        "input_ids": {0: "tokens"},
        "bbox": {0: "tokens"},
        "boxes": {0: "detections"},
        "classes": {0: "detections"},
        "scores": {0: "detections"},
    }
    names = (*detector.input_names, *OUTPUT_NAMES)
    fp32 = path.with_name(f".{path.name}.{os.getpid()}.fp32")
    int8 = path.with_name(f".{path.name}.{os.getpid()}.int8")
    try:
        torch.onnx.export(
            detector,
            inputs,
            fp32,
            opset_version=ONNX_OPSET,
            dynamo=False,
            input_names=list(detector.input_names),
            output_names=list(OUTPUT_NAMES),
            dynamic_axes={name: dynamic[name] for name in names},
        )
        written = fp32
        if quantize == "int8":
            quantize_onnx_int8(fp32, int8)
            written = int8
        graph = onnx.load(written)
        for key, value in metadata.items():
            graph.metadata_props.add(key=key, value=value)
        onnx.save(graph, written)
        os.replace(written, path)
    finally:
        fp32.unlink(missing_ok=True)
        int8.unlink(missing_ok=True)


def export_model(
    model: nn.Module,
    page: dict,
    path,
    *,
    config: str = "",
    class_names=(),
    quantize=None,
) -> Path:
    """Trace ``model`` (eval mode, CPU) on one test-time mapper output ``page`` and write it.

    Args:
        page: ``LayoutDatasetMapper(cfg, is_train=False)`` output (with text for a text model);
            the trace holds for pages of any size and token count.
        config: the config as YAML (``cfg.dump()``), stored in the file.
        class_names: the model's class names, stored in the file.
        quantize: None, or "int8": the linear layers' weights in int8 (ONNX Runtime's dynamic
            quantization of MatMul/Gemm).

    The graph is ONNX opset 17 with dynamic page size and token count.

    Returns:
        ``path``, written atomically.
    """
    if quantize not in (None, "int8"):
        raise ValueError(f"quantize '{quantize}' is not one of None, 'int8'")
    detector = PageDetector(model)
    inputs = detector.example_inputs(page)
    metadata = {
        "config": config,
        "class_names": json.dumps(list(class_names)),
        "inputs": json.dumps(detector.input_names),
        "quantize": quantize or "",
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    patch = mock.patch.object(cascade_rcnn, "_ScaleGradient", _IdentityGradientScale)
    with torch.no_grad(), patch, warnings.catch_warnings():
        # detectron2's asserts and shape checks, each reported while tracing; what the trace
        # keeps is checked against eager on other page sizes by the tests
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        _write_onnx(detector, inputs, path, metadata, quantize)
    return path
