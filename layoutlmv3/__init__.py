"""LayoutLMv3 for document layout: the model, weight loading and OCR-page tokenization.

torch + transformers only; no detectron2 import here.
"""

from .loading import IncompatibleWeights, load_state_dict
from .modeling import LayoutLMv3DetectionOutput, LayoutLMv3Model

__all__ = [
    "IncompatibleWeights",
    "LayoutLMv3DetectionOutput",
    "LayoutLMv3Model",
    "load_state_dict",
]
