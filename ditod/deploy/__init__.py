"""A trained detector at work: the predictor, inference over page images and PDFs, TorchScript
export and drawing."""

from .export import export_torchscript
from .inference import run_inference
from .predictor import LayoutPredictor
from .visualization import draw_detections

__all__ = ["LayoutPredictor", "draw_detections", "export_torchscript", "run_inference"]
