"""Detections drawn on their page with detectron2's ``Visualizer``, one colour per class (no
per-box jitter: the same page always gives the same overlay), labels in any script (an installed
CJK font is matplotlib's fallback for glyphs DejaVu lacks: class names in Chinese)."""

import functools

import matplotlib
import numpy as np
from detectron2.data import Metadata
from detectron2.utils.visualizer import Visualizer
from matplotlib import colormaps, font_manager

from ditod.fonts import cjk_fonts

__all__ = ["class_colors", "draw_detections"]


def class_colors(num_classes: int) -> list[tuple[int, int, int]]:
    """A distinct RGB colour (0..255) per class: matplotlib's tab10, then tab20."""
    palette = colormaps["tab10" if num_classes <= 10 else "tab20"]
    return [tuple(int(255 * c) for c in palette(i % palette.N)[:3]) for i in range(num_classes)]


@functools.cache
def label_font_family() -> list[str]:
    """The families labels are drawn in: matplotlib's first sans-serif font, then the installed
    CJK fonts (registered with matplotlib once); matplotlib takes each glyph from the first
    family that has it, so Latin from DejaVu and CJK from the CJK font."""
    names = [matplotlib.rcParams["font.sans-serif"][0]]
    for path in cjk_fonts():
        font_manager.fontManager.addfont(path)
        names.append(font_manager.FontProperties(fname=path).get_name())
    return names


def draw_detections(
    image: np.ndarray, detections: list[dict], class_names, scale=1.0
) -> np.ndarray:
    """(H, W, 3) uint8 RGB page → the same page with each detection's box and a
    ``"<class> <score>%"`` label in its class's colour (the same colour for every box of a
    class). ``detections``: :func:`~ditod.deploy.run_outputs.page_detections` entries, their
    boxes in pixels of the full page; ``scale``: the image's size over the full page's."""
    visualizer = Visualizer(image, Metadata())
    if not detections:
        return visualizer.output.get_image()
    colors = class_colors(len(class_names))
    boxes = np.array([d["bbox"] for d in detections], dtype=np.float64) * scale
    labels = [f"{class_names[d['category_id']]} {100 * d['score']:.0f}%" for d in detections]
    assigned = [tuple(v / 255 for v in colors[d["category_id"]]) for d in detections]
    drawn = visualizer.overlay_instances(
        boxes=boxes, labels=labels, assigned_colors=assigned, alpha=0.8
    )
    for text in drawn.ax.texts:  # detectron2 draws in "sans-serif": one font, no fallback
        text.set_fontfamily(label_font_family())
    return drawn.get_image()
