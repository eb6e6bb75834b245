"""RoIAlign's CPU backward in bf16: torchvision's loop against :class:`MatmulROIAlign`'s two
matrix products, side by side in one run — the kernel on the boxes a demo training step pools
(its stride-4 level, then that map and its boxes at 2× and 3× the size, at 64 and 256 channels),
and the demo config's whole training step (batch 2, bf16 autocast) with each.

    python benchmarks/roi_align.py [--out benchmarks/results/roi_align.json]
"""

import argparse
import tempfile
from pathlib import Path

import ditod  # noqa: F401  (its shims must apply before detectron2 is imported)

# isort: split
import torch
from _harness import measure, write_result
from detectron2.layers import ROIAlign
from detectron2.utils.events import EventStorage
from training_step import TINY, config, pages, train_step

from ditod.data.mapper import LayoutDatasetMapper
from ditod.modeling.roi_align import MATMUL_COST_RATIO, MatmulROIAlign


def levels(model):
    return [
        level
        for module in model.roi_heads.modules()
        if hasattr(module, "level_poolers")
        for level in module.level_poolers
    ]


def pooled_boxes(model, step):
    """The features' shape and the boxes the first stage pools from the stride-4 level in one
    training step."""
    first = levels(model)[0]
    seen = []
    hook = first.register_forward_hook(lambda m, args, out: seen.append(args))
    step()
    hook.remove()
    features, rois = seen[0]
    return features.shape, rois.detach().float()


def kernel_backward(kind, shape, rois, scale, channels):
    """Seconds of one backward of ``kind`` (torchvision's ROIAlign or MatmulROIAlign) on a bf16
    map of ``shape`` scaled ``scale``× with ``channels`` channels."""
    batch, _, height, width = shape
    features = torch.randn(batch, channels, height * scale, width * scale).bfloat16()
    features.requires_grad_()
    boxes = rois.clone()
    boxes[:, 1:] *= scale
    module = kind((7, 7), 0.25, 0, True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        output = module(features, boxes.bfloat16())
    grad = torch.randn_like(output)
    seconds = measure(lambda: torch.autograd.grad(output, features, grad, retain_graph=True), 2.0)
    return seconds.median


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks/results/roi_align.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        records, tokenizer = pages(Path(scratch))
        cfg = config(TINY, tokenizer, "cpu")
        batch = [LayoutDatasetMapper(cfg, is_train=True)(r) for r in records[:2]]
        with EventStorage(0):
            model, step = train_step(cfg, batch, torch.bfloat16)
            for _ in range(3):
                step()
            shape, rois = pooled_boxes(model, step)
            kernels = {}
            for channels in (64, 256):
                for scale in (1, 2, 3):
                    name = f"{shape[2] * scale}x{shape[3] * scale}_c{channels}"
                    loop = kernel_backward(ROIAlign, shape, rois, scale, channels)
                    product = kernel_backward(MatmulROIAlign, shape, rois, scale, channels)
                    kernels[f"ms_torchvision_{name}"] = loop * 1e3
                    kernels[f"ms_matmul_{name}"] = product * 1e3
                    kernels[f"speedup_{name}"] = loop / product
            steps = {ROIAlign: [], MatmulROIAlign: []}
            for _ in range(3):  # alternated, so that drift in the machine's load hits both
                for kind in steps:
                    for level in levels(model):
                        level.__class__ = kind
                    steps[kind].append(measure(step, 10.0).median)
    loop_step, product_step = (min(times) for times in steps.values())
    summary = {
        "benchmark": "RoIAlign CPU backward in bf16: torchvision's loop vs two matrix products "
        "(MatmulROIAlign), on a demo step's stride-4 boxes and that map scaled; the demo "
        "config's bf16 training step (batch 2) with each",
        "device": "cpu",
        "boxes": len(rois),
        "matmul_cost_ratio": MATMUL_COST_RATIO,
        **kernels,
        "s_per_step_torchvision": loop_step,
        "s_per_step_matmul": product_step,
        "step_speedup": loop_step / product_step,
        "targets": {"step_speedup": "> 1 on a CPU with bf16 units"},
    }
    write_result(summary, Path(args.out))


if __name__ == "__main__":
    main()
