"""Detections drawn on their page with detectron2's ``Visualizer``, one colour per class."""

import numpy as np
from detectron2.data import Metadata
from detectron2.structures import Instances
from detectron2.utils.visualizer import ColorMode, Visualizer
from matplotlib import colormaps

__all__ = ["class_colors", "draw_detections"]


def class_colors(num_classes: int) -> list[tuple[int, int, int]]:
    """A distinct RGB colour (0..255) per class: matplotlib's tab10, then tab20."""
    palette = colormaps["tab10" if num_classes <= 10 else "tab20"]
    return [tuple(int(255 * c) for c in palette(i % palette.N)[:3]) for i in range(num_classes)]


def draw_detections(image: np.ndarray, instances: Instances, class_names) -> np.ndarray:
    """(H, W, 3) uint8 RGB page → the same page with each detection's box and a
    ``"<class> <score>%"`` label in its class colour."""
    metadata = Metadata(
        thing_classes=list(class_names), thing_colors=class_colors(len(class_names))
    )
    visualizer = Visualizer(image, metadata, instance_mode=ColorMode.SEGMENTATION)
    return visualizer.draw_instance_predictions(instances).get_image()
