"""LayoutLMv3 for document layout: the model, weight loading and OCR-page tokenization.

torch + transformers only; no detectron2 import here.
"""

from .loading import IncompatibleWeights, load_state_dict
from .modeling import LayoutLMv3DetectionModel, LayoutLMv3DetectionOutput
from .tokenization import EncodedPage, OCRPageTokenizer, load_tokenizer, normalize_box

__all__ = [
    "EncodedPage",
    "IncompatibleWeights",
    "LayoutLMv3DetectionModel",
    "LayoutLMv3DetectionOutput",
    "OCRPageTokenizer",
    "load_state_dict",
    "load_tokenizer",
    "normalize_box",
]
