"""labelme annotation files, the format CDLA ships: one JSON beside each page image,
``{"version", "flags", "shapes": [{"label", "points", "group_id", "shape_type", "flags"}],
"imagePath", "imageData", "imageHeight", "imageWidth"}``; a layout block is a ``rectangle``
(two corners) or a ``polygon`` (its corners in order)."""

import random

__all__ = ["LABELME_VERSION", "labelme_page", "shape_polygon"]

LABELME_VERSION = "4.5.6"  # the version CDLA's files name


def shape_polygon(shape: dict, source) -> list[float]:
    """A labelme shape as a flat COCO polygon ``[x0, y0, x1, y1, ...]`` (a rectangle's two corners
    become its four); ``source`` (the file) names the shape's page in the error a malformed one
    raises."""
    points = shape.get("points") or []
    if len(points) < 2 or any(len(p) != 2 for p in points):
        raise ValueError(f"{source}: shape '{shape.get('label')}' has malformed points {points}")
    if shape.get("shape_type") == "rectangle" or len(points) == 2:
        (x0, y0), (x1, y1) = points[0], points[-1]
        points = [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]
    return [float(v) for point in points for v in point]


def labelme_page(
    image_name: str, size: tuple[int, int], boxes, rng: random.Random | None = None
) -> dict:
    """The labelme dict of one page: ``boxes`` are ``(label, [x, y, w, h])``; each becomes a
    four-point polygon, or with ``rng``, a two-corner rectangle for about a third of them (CDLA's
    annotators drew both)."""
    width, height = size
    shapes = []
    for label, (x, y, w, h) in boxes:
        if rng is not None and rng.random() < 1 / 3:
            kind, points = "rectangle", [[x, y], [x + w, y + h]]
        else:
            kind, points = "polygon", [[x, y], [x + w, y], [x + w, y + h], [x, y + h]]
        shapes.append(
            {
                "label": label,
                "points": [[float(px), float(py)] for px, py in points],
                "group_id": None,
                "shape_type": kind,
                "flags": {},
            }
        )
    return {
        "version": LABELME_VERSION,
        "flags": {},
        "shapes": shapes,
        "imagePath": image_name,
        "imageData": None,
        "imageHeight": height,
        "imageWidth": width,
    }
