"""Detections compared as matched sets, never by rank: detections whose scores tie (common with
random weights on plain pages) come out in an order that depends on the CPU's kernels, the
thread count and the backend."""

import numpy as np


def as_detections(boxes, classes, scores) -> list[tuple]:
    """``(box (4,), class, score)`` tuples from parallel arrays or tensors."""
    boxes, classes, scores = (np.asarray(x, dtype=np.float64) for x in (boxes, classes, scores))
    return [(b, int(c), float(s)) for b, c, s in zip(boxes.reshape(-1, 4), classes, scores)]


def detections_of(instances) -> list[tuple]:
    """The detections of a detectron2 ``Instances`` (``pred_boxes``, ``pred_classes``,
    ``scores``)."""
    return as_detections(instances.pred_boxes.tensor, instances.pred_classes, instances.scores)


def from_prediction_json(page: dict) -> list[tuple]:
    """The detections of one page's prediction JSON (``tools/infer.py``)."""
    return [
        (np.asarray(d["bbox"], np.float64), d["category"], d["score"]) for d in page["detections"]
    ]


def assert_same_detections(got, expected, *, box_atol=1e-2, score_atol=1e-4, cap=None):
    """Every detection of ``got`` matched to its own detection of ``expected``: the same class,
    scores within ``score_atol``, every box corner within ``box_atol`` (pixels). Each is matched
    to the closest box among the candidates still free, so equal or tied detections pair up in
    whichever order they come.

    ``cap``: the per-page detection limit (``TEST.DETECTIONS_PER_IMAGE``). When both sides hit
    it, which of the detections tied at the lowest kept score made the cut depends on the order
    of the ties: those are matched by count and score only."""
    assert len(got) == len(expected), f"{len(got)} detections, expected {len(expected)}"
    if cap is not None and len(got) == cap:
        cut = min(score for *_, score in expected) + score_atol
        tied = [sum(score <= cut for *_, score in side) for side in (got, expected)]
        assert tied[0] == tied[1], f"{tied[0]} detections at the cut score, expected {tied[1]}"
        got = [d for d in got if d[2] > cut]
        expected = [d for d in expected if d[2] > cut]
    free = list(range(len(expected)))
    for box, category, score in sorted(got, key=lambda d: -d[2]):
        candidates = [
            j
            for j in free
            if expected[j][1] == category and abs(expected[j][2] - score) <= score_atol
        ]
        distance = [np.abs(expected[j][0] - box).max() for j in candidates]
        best = int(np.argmin(distance)) if candidates else None
        assert best is not None and distance[best] <= box_atol, (
            f"no expected detection like {np.round(box, 2).tolist()}, class {category}, score "
            f"{score:.5f}"
            + (f" (closest box {distance[best]:.3f} px away)" if best is not None else "")
        )
        free.remove(candidates[best])
