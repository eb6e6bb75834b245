"""Text→grid fusion: ditod.modeling.fusion.scatter_text_to_grid vs a per-box Python loop (the
original experiments' way, with its axes fixed), B=2, N=300, C=768, 25×19 map, in one process;
median times by ``torch.utils.benchmark``.

    python benchmarks/fusion_scatter.py [--device cuda] [--out results.json]
"""

import argparse
import math
import os

import torch
from _harness import measure, write_result

from ditod.modeling.fusion import scatter_text_to_grid


def per_box_loop(feats, boxes, mask, sizes, grid_hw, stride):
    """The original formulation: one slice-add per token box."""
    batch, num_tokens, channels = feats.shape
    height, width = grid_hw
    out = feats.new_zeros(batch, channels, height, width)
    for b in range(batch):
        page_h, page_w = sizes[b]
        for n in range(num_tokens):
            if not mask[b, n]:
                continue
            x0, y0, x1, y1 = boxes[b, n].tolist()

            def cell(value, size, limit):
                return min(max(math.floor(value / 1000 * size / stride), 0), limit - 1)

            c0, c1 = cell(x0, page_w, width), cell(x1, page_w, width)
            r0, r1 = cell(y0, page_h, height), cell(y1, page_h, height)
            out[b, :, r0 : r1 + 1, c0 : c1 + 1] += feats[b, n][:, None, None]
    return out


def inputs(device, batch=2, tokens=300, channels=768, seed=0):
    generator = torch.Generator().manual_seed(seed)
    x0 = torch.randint(0, 1000, (batch, tokens), generator=generator)
    y0 = torch.randint(0, 1000, (batch, tokens), generator=generator)
    width = torch.randint(0, 300, (batch, tokens), generator=generator)
    height = torch.randint(0, 60, (batch, tokens), generator=generator)
    boxes = torch.stack([x0, y0, (x0 + width).clamp(max=1000), (y0 + height).clamp(max=1000)], -1)
    mask = torch.ones(batch, tokens, dtype=torch.bool)
    mask[1, 250:] = False
    feats = torch.randn(batch, tokens, channels, generator=generator)
    return feats.to(device), boxes.to(device), mask.to(device), [(800, 608), (704, 544)]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", default="benchmarks/results/fusion_scatter.json")
    args = parser.parse_args()
    feats, boxes, mask, sizes = inputs(args.device)
    grid_hw, stride = (25, 19), 32

    def ours():
        return scatter_text_to_grid(feats, boxes, mask, sizes, grid_hw, stride)

    def loop():
        return per_box_loop(feats, boxes, mask, sizes, grid_hw, stride)

    loop_s = measure(loop, 2.0).median
    ours_s = measure(ours, 2.0).median
    summary = {
        "benchmark": "text→grid fusion, B=2 N=300 C=768 25x19, vs per-box loop",
        "device": torch.cuda.get_device_name()
        if args.device == "cuda"
        else f"cpu ({os.cpu_count()} cores)",
        "speedup": loop_s / ours_s,
        "max_abs_diff": (ours() - loop()).abs().max().item(),
        "ours_median_ms": ours_s * 1e3,
        "loop_median_ms": loop_s * 1e3,
        "targets": {"speedup": ">= 30 (CPU), >= 300 (GPU)", "max_abs_diff": "<= 1e-4"},
    }
    write_result(summary, args.out)


if __name__ == "__main__":
    main()
