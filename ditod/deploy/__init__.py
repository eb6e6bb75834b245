"""A trained detector at work: the predictor, inference over page images and PDFs, export to
ONNX and drawing."""

from .export import export_model
from .inference import run_inference
from .predictor import LayoutPredictor
from .visualization import draw_detections

__all__ = ["LayoutPredictor", "draw_detections", "export_model", "run_inference"]
