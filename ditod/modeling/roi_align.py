"""RoIAlign whose CPU backward in bfloat16 is two matrix products.

RoIAlign's samples in a box lie on a grid, so their bilinear weights separate by axis: box
``r``'s output is ``Ay[r] @ F[b_r, c] @ Ax[r].T``, with ``Ay[r]`` (P, H) and ``Ax[r]`` (Q, W) each
bin's mean bilinear weight of every row and column of the map. The gradient of the map is then
``sum_r Ay[r].T @ (G[r, c] @ Ax[r])``: a batched product and one GEMM per page, dense over the
map's rows, run in bf16 by the CPU's GEMM on all cores. torchvision's CPU backward instead loops
over boxes × channels × bins × samples on one thread; in bf16 training on the demo's 320-pixel
pages that loop was a quarter of a step. :class:`MatmulROIAlign` takes the product for bf16
feature maps (bf16 autocast training) where it costs at most :data:`MATMUL_COST_RATIO`
multiply-adds per sample of the loop; there it was 2.2-4.9× faster than the loop and a demo
step 1.4× (``benchmarks/roi_align.py``). In float32 the loop stays: the product was slower
there. The forward is always torchvision's; on CUDA, without autograd, and under tracing or
export it is detectron2's ``ROIAlign`` as is.
"""

import torch
from detectron2.layers import ROIAlign
from detectron2.modeling.poolers import ROIPooler
from torch.nn.modules.utils import _pair
from torchvision.ops import roi_align

__all__ = [
    "MATMUL_COST_RATIO",
    "MATMUL_MAX_ELEMENTS",
    "MatmulROIAlign",
    "roi_align_axis_weights",
    "use_matmul_roi_align",
]

# The product's multiply-adds per sample of torchvision's loop (one sample of one channel) up to
# which the product runs. The product grows with the map's rows, the loop with the boxes' sizes.
# On 2 Zen 4 cores (AVX512-BF16), a demo step's boxes on maps of 104×80 to 312×240 cells (~370
# to ~720 per sample): the product 2.4-4.9× faster at 64 channels, 2.2-2.5× at 256.
MATMUL_COST_RATIO = 1024
# The most elements the product's intermediate (R*P, C*W) may hold (128 MiB in bf16).
MATMUL_MAX_ELEMENTS = 2**26


def roi_align_axis_weights(
    start: torch.Tensor, size: torch.Tensor, bins: int, length: int, sampling_ratio: int
) -> torch.Tensor:
    """Each bin's mean bilinear weight of every map index along one axis, as torchvision's CPU
    RoIAlign samples it (``sampling_ratio`` <= 0: ceil(size / bins) samples a bin).

    Args:
        start, size: (R,) the boxes' first coordinate and extent on this axis, in map cells
            (already scaled and, for ``aligned``, shifted by -0.5).
        bins: the pooled size on this axis; length: the map's size on this axis.

    Returns:
        (R, bins, length), in ``start``'s dtype.
    """
    boxes = start.shape[0]
    bin_size = size / bins
    if sampling_ratio > 0:
        grid = torch.full((boxes,), sampling_ratio, dtype=torch.long)
    else:
        grid = torch.ceil(bin_size).clamp(min=0).long()
    most = max(int(grid.max()) if boxes else 0, 1)
    sample = torch.arange(most, dtype=start.dtype)
    grid_float = grid.to(start.dtype).clamp(min=1)
    # torchvision: start + bin * bin_size + (sample + 0.5) * bin_size / grid, in this order
    position = (
        start[:, None, None]
        + torch.arange(bins, dtype=start.dtype)[:, None] * bin_size[:, None, None]
        + (sample + 0.5) * bin_size[:, None, None] / grid_float[:, None, None]
    )
    inside = (sample < grid[:, None, None]) & (position >= -1.0) & (position <= length)
    position = position.clamp(min=0)
    low = position.floor().long()
    at_edge = low >= length - 1
    low = low.clamp(max=length - 1)
    high = torch.where(at_edge, low, low + 1)
    fraction = torch.where(at_edge, 0.0, position - low.to(position.dtype))
    share = inside.to(position.dtype) / grid_float[:, None, None]
    weights = torch.zeros(boxes, bins, length, dtype=start.dtype)
    weights.scatter_add_(2, low.flatten(2), ((1 - fraction) * share).flatten(2))
    weights.scatter_add_(2, high.flatten(2), (fraction * share).flatten(2))
    return weights


class _MatmulBackwardROIAlign(torch.autograd.Function):
    """torchvision's ``roi_align``; its bf16 backward as two matrix products (module docstring)."""

    @staticmethod
    def forward(ctx, features, rois, output_size, spatial_scale, sampling_ratio, aligned):
        # torchvision's CPU autocast runs the kernel in float32 and casts its output back.
        ctx.kernel_dtype = torch.float32 if torch.is_autocast_enabled("cpu") else features.dtype
        ctx.features_shape, ctx.features_dtype = features.shape, features.dtype
        ctx.params = (output_size, spatial_scale, sampling_ratio, aligned)
        ctx.save_for_backward(rois)
        return roi_align(features, rois, output_size, spatial_scale, sampling_ratio, aligned)

    @staticmethod
    def backward(ctx, grad_output):
        (rois,) = ctx.saved_tensors
        output_size, spatial_scale, sampling_ratio, aligned = ctx.params
        rois = rois.to(ctx.kernel_dtype)
        weights = None
        if ctx.features_dtype == torch.bfloat16:
            weights = _matmul_weights(rois, ctx.features_shape, output_size, spatial_scale,
                                    sampling_ratio, aligned)  # fmt: skip
        if weights is None:
            grad = _torchvision_backward(grad_output.to(ctx.kernel_dtype), rois, ctx)
        else:
            grad = _matmul_backward(grad_output.to(ctx.features_dtype), rois, *weights, ctx)
        return grad.to(ctx.features_dtype), None, None, None, None, None


def _matmul_weights(rois, shape, output_size, spatial_scale, sampling_ratio, aligned):
    """(Ay (R, P, H), Ax (R, Q, W)) where the product is the cheaper backward, else None."""
    _, channels, height, width = shape
    (bins_y, bins_x), count = output_size, rois.shape[0]
    if count == 0:
        return None
    offset = 0.5 if aligned else 0.0
    x0, y0, x1, y1 = (rois[:, i] * spatial_scale - offset for i in range(1, 5))
    size_x, size_y = x1 - x0, y1 - y0
    if not aligned:  # torchvision's legacy mode: boxes at least one cell wide and tall
        size_x, size_y = size_x.clamp(min=1.0), size_y.clamp(min=1.0)
    if sampling_ratio > 0:
        samples = count * sampling_ratio**2
    else:
        grid_y = torch.ceil(size_y / bins_y).clamp(min=0)
        grid_x = torch.ceil(size_x / bins_x).clamp(min=0)
        samples = float((grid_y * grid_x).sum())
    loop = samples * bins_y * bins_x * channels
    product = count * bins_y * channels * width * (bins_x + height)
    if product > MATMUL_COST_RATIO * max(loop, 1.0):
        return None
    if count * bins_y * channels * width > MATMUL_MAX_ELEMENTS:
        return None
    return (
        roi_align_axis_weights(y0, size_y, bins_y, height, sampling_ratio),
        roi_align_axis_weights(x0, size_x, bins_x, width, sampling_ratio),
    )


def _torchvision_backward(grad_output, rois, ctx):
    (bins_y, bins_x), spatial_scale, sampling_ratio, aligned = ctx.params
    batch, channels, height, width = ctx.features_shape
    return torch.ops.torchvision._roi_align_backward(
        grad_output.contiguous(), rois, spatial_scale, bins_y, bins_x,
        batch, channels, height, width, sampling_ratio, aligned,
    )  # fmt: skip


def _matmul_backward(grad_output, rois, weights_y, weights_x, ctx):
    """grad F[b] = sum over b's boxes r of Ay[r].T @ (G[r] @ Ax[r]); (N, C, H, W)."""
    batch, channels, height, width = ctx.features_shape
    count, _, bins_y, bins_x = grad_output.shape
    dtype = grad_output.dtype
    # (R, C*P, Q) @ (R, Q, W) -> rows (r, p), columns (c, w)
    by_columns = torch.bmm(grad_output.reshape(count, channels * bins_y, bins_x),
                           weights_x.to(dtype))  # fmt: skip
    by_columns = by_columns.view(count, channels, bins_y, width).transpose(1, 2)
    by_columns = by_columns.reshape(count * bins_y, channels * width)
    weights_y = weights_y.to(dtype).reshape(count * bins_y, height)
    grad = torch.zeros(batch, height, channels * width, dtype=dtype)
    page = rois[:, 0].long()
    if not bool((page[1:] >= page[:-1]).all()):  # detectron2 lists each page's boxes together
        order = torch.argsort(page, stable=True)
        page = page[order]
        rows = (order[:, None] * bins_y + torch.arange(bins_y)).flatten()
        weights_y, by_columns = weights_y[rows], by_columns[rows]
    ends = torch.bincount(page, minlength=batch).cumsum(0).tolist()
    for index, (begin, end) in enumerate(zip([0, *ends[:-1]], ends)):
        if end > begin:
            rows = slice(begin * bins_y, end * bins_y)
            torch.mm(weights_y[rows].t(), by_columns[rows], out=grad[index])
    return grad.view(batch, height, channels, width).permute(0, 2, 1, 3)


class MatmulROIAlign(ROIAlign):
    """detectron2's ``ROIAlign`` whose CPU backward in bf16 is two matrix products where they are
    the cheaper (module docstring).

    ``forward(input, rois)``: ``input`` (N, C, H, W), ``rois`` (R, 5) as (batch index, x0, y0,
    x1, y1); returns (R, C, *output_size).
    """

    def forward(self, input: torch.Tensor, rois: torch.Tensor) -> torch.Tensor:
        if (
            input.device.type != "cpu"
            or not (torch.is_grad_enabled() and input.requires_grad)
            or input.is_quantized
            or torch.jit.is_scripting()
            or torch.jit.is_tracing()
            or torch.onnx.is_in_onnx_export()
        ):
            return super().forward(input, rois)
        assert rois.dim() == 2 and rois.size(1) == 5
        return _MatmulBackwardROIAlign.apply(
            input,
            rois.to(dtype=input.dtype),
            tuple(_pair(self.output_size)),
            self.spatial_scale,
            self.sampling_ratio,
            self.aligned,
        )


def use_matmul_roi_align(pooler: ROIPooler) -> ROIPooler:
    """Swap ``pooler``'s RoIAlign levels (``ROIAlign`` and ``ROIAlignV2``) for
    :class:`MatmulROIAlign` with the same arguments, in place; other pooler types stay. The
    modules hold no parameters: checkpoints are unchanged. Returns ``pooler``."""
    for index, level in enumerate(pooler.level_poolers):
        if type(level) is ROIAlign:
            pooler.level_poolers[index] = MatmulROIAlign(
                level.output_size, level.spatial_scale, level.sampling_ratio, level.aligned
            )
    return pooler
