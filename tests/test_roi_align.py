"""MatmulROIAlign: torchvision's RoIAlign forward, and a bf16 CPU backward as two matrix products
that gives torchvision's gradient."""

from unittest import mock

import ditod  # noqa: F401  (its shims must apply before detectron2 is imported)

# isort: split
import pytest
import torch
from detectron2.layers import ROIAlign
from torchvision.ops import roi_align

import ditod.modeling.roi_align as matmul_roi_align
from ditod.modeling.roi_align import MatmulROIAlign, roi_align_axis_weights

SCALE = 0.25


def page_boxes(seed: int = 0, pages: int = 2, count: int = 40) -> torch.Tensor:
    """(R, 5) boxes on 208×160-pixel pages, as the ROI heads pool them: wide text lines and
    blocks, a box past the page's edge, a box of zero width and a one-pixel one."""
    generator = torch.Generator().manual_seed(seed)
    x0 = torch.rand(count, generator=generator) * 120
    y0 = torch.rand(count, generator=generator) * 190
    width = 8 + torch.rand(count, generator=generator) * 150
    height = 2 + torch.rand(count, generator=generator) * 40
    boxes = torch.stack([x0, y0, x0 + width, y0 + height], dim=1)
    boxes[0] = torch.tensor([150.0, 180.0, 190.0, 230.0])  # past the right and bottom edges
    boxes[1] = torch.tensor([40.0, 50.0, 40.0, 90.0])  # zero width
    boxes[2] = torch.tensor([10.0, 10.0, 11.0, 11.0])
    page = torch.arange(count) * pages // count  # each page's boxes together, as detectron2's
    return torch.cat([page[:, None].float(), boxes], dim=1)


@pytest.mark.parametrize("aligned", [True, False])
@pytest.mark.parametrize("sampling_ratio", [0, 2])
def test_axis_weights_reproduce_torchvision_roi_align(aligned, sampling_ratio):
    features = torch.randn(2, 3, 52, 40, dtype=torch.float64)
    rois = page_boxes().double()
    offset = 0.5 if aligned else 0.0
    x0, y0, x1, y1 = (rois[:, i] * SCALE - offset for i in range(1, 5))
    size_x, size_y = x1 - x0, y1 - y0
    if not aligned:
        size_x, size_y = size_x.clamp(min=1.0), size_y.clamp(min=1.0)
    weights_y = roi_align_axis_weights(y0, size_y, 7, 52, sampling_ratio)
    weights_x = roi_align_axis_weights(x0, size_x, 7, 40, sampling_ratio)
    separable = torch.einsum(
        "rph,rchw,rqw->rcpq", weights_y, features[rois[:, 0].long()], weights_x
    )
    reference = roi_align(features, rois, (7, 7), SCALE, sampling_ratio, aligned)
    torch.testing.assert_close(separable, reference, rtol=1e-12, atol=1e-12)
    assert reference[0].abs().sum() > 0  # the box past the edge samples the map inside it


def gradients(module: torch.nn.Module, features: torch.Tensor, rois, grad, autocast: bool):
    features = features.detach().requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        output = module(features, rois.to(features.dtype))
    (features_grad,) = torch.autograd.grad(output, features, grad)
    return output, features_grad


@pytest.mark.parametrize("shuffle", [False, True])
def test_bf16_backward_is_the_matmul_and_matches_torchvision(shuffle):
    torch.manual_seed(0)
    rois = page_boxes()
    if shuffle:  # boxes of the two pages interleaved
        rois = rois[torch.randperm(len(rois))]
    features = torch.randn(2, 16, 52, 40).bfloat16()
    grad = torch.randn(len(rois), 16, 7, 7).bfloat16()
    reference_out, reference = gradients(ROIAlign((7, 7), SCALE, 0), features, rois, grad, True)
    spy = mock.patch.object(
        matmul_roi_align, "_matmul_backward", wraps=matmul_roi_align._matmul_backward
    )
    with spy as matmul:
        out, got = gradients(MatmulROIAlign((7, 7), SCALE, 0), features, rois, grad, True)
    assert matmul.call_count == 1
    assert torch.equal(out, reference_out)
    assert got.dtype == reference.dtype == torch.bfloat16
    # the float64 gradient of the same (bf16) inputs: both within bf16's rounding of it
    _, exact = gradients(
        ROIAlign((7, 7), SCALE, 0), features.double(), rois.bfloat16(), grad.double(), False
    )
    error = (got.double() - exact).norm() / exact.norm()
    reference_error = (reference.double() - exact).norm() / exact.norm()
    assert error < 1e-2 and reference_error < 1e-2, (error, reference_error)


def test_float32_backward_is_torchvision_bit_for_bit():
    torch.manual_seed(1)
    rois = page_boxes(seed=1)
    features = torch.randn(2, 16, 52, 40)
    grad = torch.randn(len(rois), 16, 7, 7)
    with mock.patch.object(matmul_roi_align, "_matmul_backward") as matmul:
        out, got = gradients(MatmulROIAlign((7, 7), SCALE, 0), features, rois, grad, False)
    matmul.assert_not_called()
    reference_out, reference = gradients(ROIAlign((7, 7), SCALE, 0), features, rois, grad, False)
    assert torch.equal(out, reference_out) and torch.equal(got, reference)


def test_large_maps_keep_torchvision_backward():
    """Past MATMUL_COST_RATIO the dense product would cost more than the loop: torchvision's."""
    rois = page_boxes(count=4)
    rois[:, 1:] = torch.tensor([0.0, 0.0, 8.0, 8.0])  # small boxes on a large map
    features = torch.randn(2, 8, 400, 300).bfloat16()
    grad = torch.randn(len(rois), 8, 7, 7).bfloat16()
    with mock.patch.object(matmul_roi_align, "_matmul_backward") as matmul:
        _, got = gradients(MatmulROIAlign((7, 7), SCALE, 0), features, rois, grad, True)
    matmul.assert_not_called()
    _, reference = gradients(ROIAlign((7, 7), SCALE, 0), features, rois, grad, True)
    assert torch.equal(got, reference)


def test_no_boxes_on_a_level():
    features = torch.randn(2, 8, 13, 10).bfloat16()
    rois = torch.zeros(0, 5)
    out, got = gradients(
        MatmulROIAlign((7, 7), 1 / 32, 0), features, rois, torch.zeros(0, 8, 7, 7), True
    )
    assert out.shape == (0, 8, 7, 7) and torch.equal(got, torch.zeros_like(got))
