"""TorchScript export of the image-only detector through detectron2's tracing path."""

import os
from pathlib import Path
from unittest import mock

import torch
from detectron2.export import TracingAdapter
from detectron2.modeling.roi_heads import cascade_rcnn

__all__ = ["export_torchscript", "traced_inference"]


class _IdentityGradientScale:
    """``cascade_rcnn._ScaleGradient`` while tracing: a Python autograd function that only
    scales gradients, so the identity at inference (detectron2 after v0.6 skips it outside
    training); TorchScript cannot hold the Python function."""

    @staticmethod
    def apply(features, scale):
        return features


def traced_inference(model, inputs):
    """What is traced: raw detections of one page (boxes in the input image's pixels), as
    ``[{"instances": Instances}]`` so ``TracingAdapter`` can flatten them."""
    instances = model.inference(inputs, do_postprocess=False)[0]
    return [{"instances": instances}]


def export_torchscript(model, image: torch.Tensor, path) -> TracingAdapter:
    """Trace ``model`` (image-only, eval mode) on ``image`` and save it to ``path``.

    Args:
        image: (3, H, W) page in the model's ``INPUT.FORMAT``, already resized as at test time
            (``INPUT.MIN/MAX_SIZE_TEST``). The traced model takes such a tensor and returns
            ``(pred_boxes (N, 4) XYXY in its pixels, pred_classes (N,), scores (N,),
            image_size (2,))``; ``adapter.outputs_schema`` rebuilds ``Instances`` from them.

    Returns:
        the adapter used for tracing (its ``outputs_schema`` reads the traced outputs).
    """
    if getattr(model, "use_text", False):
        raise ValueError(
            "TorchScript export needs an image-only detector (MODEL.LAYOUTLMV3.IMAGE_ONLY True): "
            "a text-fused model's inputs depend on OCR and tokenization outside the graph"
        )
    adapter = TracingAdapter(model.eval(), [{"image": image}], traced_inference)
    with torch.no_grad(), mock.patch.object(cascade_rcnn, "_ScaleGradient", _IdentityGradientScale):
        traced = torch.jit.trace(adapter, adapter.flattened_inputs, check_trace=False)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        traced.save(str(tmp))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return adapter
