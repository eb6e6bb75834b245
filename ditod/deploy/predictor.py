"""A trained detector applied to page images, the text read exactly as training read it."""

import logging
from typing import Protocol, runtime_checkable

import torch
from detectron2.modeling import build_model
from detectron2.structures import Instances

from ..data.mapper import LayoutDatasetMapper
from ..engine.checkpoint import LayoutCheckpointer
from ..modeling.precision import apply_inference_precision, choose_precision

__all__ = ["LayoutPredictor", "Predictor"]

logger = logging.getLogger(__name__)


@runtime_checkable
class Predictor(Protocol):
    """What an inference run (:func:`~ditod.deploy.inference.run_inference`, a Ray actor, the
    benchmarks) calls, whatever the backend: :class:`LayoutPredictor` (PyTorch) and
    :class:`~ditod.deploy.onnx_predictor.OnnxLayoutPredictor` (ONNX Runtime).

    Attributes:
        class_names: the model's classes, in model order.
        uses_text: whether pages need their OCR text.
    """

    class_names: list[str]
    uses_text: bool

    def map_page(self, image, ocr=None) -> dict:
        """One page's model input from an image (path or binary file) and its OCR."""
        ...

    def __call__(self, inputs: list[dict]) -> list[Instances]:
        """Detections of a batch of :meth:`map_page` outputs, on the CPU."""
        ...


class LayoutPredictor:
    """Config + ``MODEL.WEIGHTS`` → detections for batches of pages.

    Pages go through the test-time :class:`~ditod.data.mapper.LayoutDatasetMapper` (resize of
    ``INPUT.MIN/MAX_SIZE_TEST``, OCR JSON → tokens with ``MODEL.LAYOUTLMV3.TEXT``), so a
    text-fused model sees its text as it did in evaluation.

    ``MODEL.WEIGHTS`` must provide every model tensor (unless
    ``MODEL.LAYOUTLMV3.ALLOW_RANDOM_INIT``): a checkpoint that does not fit the config is refused.
    The arithmetic is ``TEST.PRECISION`` (see :mod:`ditod.modeling.precision`; ``auto`` picks
    bf16 or int8 where the device runs them faster, else fp32).

    Attributes:
        class_names: names of the model's classes, in model order: the checkpoint's
            ``class_names`` (saved by the trainer), else ``class 0`` … ``class K-1``.
        uses_text: whether the model reads OCR text.
        precision: the :class:`~ditod.modeling.precision.PrecisionChoice` it runs in.
    """

    def __init__(self, cfg):
        choice = choose_precision(cfg.TEST.PRECISION, cfg.MODEL.DEVICE)  # refused before building
        self.cfg = cfg.clone()
        self.model = build_model(self.cfg).eval()
        checkpoint = LayoutCheckpointer(
            self.model,
            strict=cfg.MODEL.LAYOUTLMV3.STRICT_WEIGHTS,
            complete=not cfg.MODEL.LAYOUTLMV3.ALLOW_RANDOM_INIT,
        ).load(cfg.MODEL.WEIGHTS)
        self.model, self.precision = apply_inference_precision(self.model, self.cfg, choice)
        num_classes = cfg.MODEL.ROI_HEADS.NUM_CLASSES
        self.class_names = list(checkpoint.get("class_names") or [])
        if len(self.class_names) != num_classes:
            if self.class_names:  # only reachable with MODEL.LAYOUTLMV3.ALLOW_RANDOM_INIT
                logger.warning(
                    "%s names %d classes, the config %d (MODEL.ROI_HEADS.NUM_CLASSES): "
                    "classes are reported by number",
                    cfg.MODEL.WEIGHTS,
                    len(self.class_names),
                    num_classes,
                )
            self.class_names = [f"class {i}" for i in range(num_classes)]
        self.mapper = LayoutDatasetMapper(self.cfg, is_train=False)
        self.uses_text = self.mapper.tokenizer is not None

    def map_page(self, image, ocr=None) -> dict:
        """One page's model input: ``image`` a path or a binary file object (bytes in memory),
        ``ocr`` the path of its OCR JSON or the OCR dict itself. Errors (unreadable image, bad
        OCR JSON) name the file."""
        page = {"file_name": image if hasattr(image, "read") else str(image)}
        if isinstance(ocr, dict):
            page["ocr_page"] = ocr
        elif ocr is not None:
            page["ocr_file"] = str(ocr)
        return self.mapper(page)

    def __call__(self, inputs: list[dict]) -> list[Instances]:
        """Detections of a batch of :meth:`map_page` outputs: per page ``Instances`` on the CPU
        with ``pred_boxes`` (XYXY, pixels of the page as read, EXIF applied), ``scores`` and
        ``pred_classes``, above ``MODEL.ROI_HEADS.SCORE_THRESH_TEST``."""
        with torch.inference_mode():
            outputs = self.model(inputs)
        return [output["instances"].to("cpu") for output in outputs]
