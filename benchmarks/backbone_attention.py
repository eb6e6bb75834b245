"""Backbone forward+backward: SDPA attention vs plain matmul-softmax-matmul (the seed's way).

Base size (768 hidden, 12 layers), one 800×608 page with 300 text tokens, detection mode, no
gradient checkpointing, dropout off. Both variants share the same weights; each runs in its own
subprocess so that peak memory (CUDA: max allocated; CPU: peak RSS growth) is measured
separately, in one run.

    python benchmarks/backbone_attention.py [--device cuda] [--min-run-time 10] [--out results.json]
"""

import argparse
import json
import math
import os
import resource
import subprocess
import sys
from pathlib import Path

import torch
from _harness import measure, write_result
from transformers import LayoutLMv3Config

from layoutlmv3 import LayoutLMv3DetectionModel
from layoutlmv3.modeling import LayoutLMv3SelfAttention


def plain_attention(self, hidden_states, attn_bias):
    """The original formulation: scores = QKᵀ/√d + bias, softmax, dropout, × V."""
    batch, length, _ = hidden_states.shape

    def heads(x):
        return x.view(batch, length, self.num_heads, self.head_dim).transpose(1, 2)

    query, key, value = (heads(f(hidden_states)) for f in (self.query, self.key, self.value))
    scores = torch.matmul(query / math.sqrt(self.head_dim), key.transpose(-1, -2))
    if attn_bias is not None:
        scores = scores + attn_bias
    probs = torch.nn.functional.dropout(
        scores.softmax(-1), self.dropout_prob, training=self.training
    )
    return torch.matmul(probs, value).transpose(1, 2).reshape(batch, length, -1)


def build_inputs(device, tokens=300, height=800, width=608, seed=0):
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, 50265, (1, tokens + 2), generator=generator)
    ids[:, 0], ids[:, -1] = 0, 2
    x0 = torch.randint(0, 800, (1, tokens + 2), generator=generator)
    y0 = torch.randint(0, 950, (1, tokens + 2), generator=generator)
    boxes = torch.stack([x0, y0, x0 + 150, y0 + 30], -1).clamp(max=1000)
    pixels = torch.randn(1, 3, height, width, generator=generator)
    inputs = dict(input_ids=ids, bbox=boxes, pixel_values=pixels)
    return {k: v.to(device) for k, v in inputs.items()}


def build_model(device):
    torch.manual_seed(0)
    # Detection settings (biases off, as unilm). Dropout off so both variants compute the same
    # function and SDPA can take its fused kernels (CPU flash attention has no dropout).
    config = LayoutLMv3Config(
        has_relative_attention_bias=False,
        has_spatial_attention_bias=False,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    return LayoutLMv3DetectionModel(config, detection=True).to(device)


def run_variant(variant, device, min_run_time):
    if variant == "plain":
        LayoutLMv3SelfAttention.forward = plain_attention
    model = build_model(device).train()
    inputs = build_inputs(device)

    def step():
        out = model(**inputs)
        loss = sum(m.float().square().mean() for m in out.feature_maps.values())
        loss.backward()
        model.zero_grad(set_to_none=True)

    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    timing = measure(step, min_run_time)
    if device == "cuda":
        peak_mb = (torch.cuda.max_memory_allocated() - base) / 2**20
    else:
        peak_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024
    model.eval()
    with torch.no_grad():
        features = model(**inputs).feature_maps["layer11"].float().cpu()
    return {
        "median_s": timing.median,
        "iqr_s": timing.iqr,
        "peak_mb": peak_mb,
        "features": features,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--min-run-time", type=float, default=10.0, help="seconds timed a variant")
    parser.add_argument("--out", default="benchmarks/results/backbone_attention.json")
    parser.add_argument("--variant", choices=["sdpa", "plain"], help=argparse.SUPPRESS)
    parser.add_argument("--features", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.variant:  # child process: one variant
        result = run_variant(args.variant, args.device, args.min_run_time)
        torch.save(result.pop("features"), args.features)
        print(json.dumps(result))
        return

    results, features = {}, {}
    for variant in ("sdpa", "plain"):
        feature_file = Path(args.out).with_suffix(f".{variant}.pt.tmp")
        feature_file.parent.mkdir(parents=True, exist_ok=True)
        command = [
            sys.executable,
            __file__,
            "--variant",
            variant,
            "--device",
            args.device,
            "--min-run-time",
            str(args.min_run_time),
            "--features",
            str(feature_file),
        ]
        child = subprocess.run(command, capture_output=True, text=True, check=True)
        results[variant] = json.loads(child.stdout.strip().splitlines()[-1])
        features[variant] = torch.load(feature_file, weights_only=True)
        os.remove(feature_file)
        print(
            f"{variant:>6}: {results[variant]['median_s']:.3f} s/iter, "
            f"peak {results[variant]['peak_mb']:.0f} MB",
            flush=True,
        )

    summary = {
        "benchmark": "backbone fwd+bwd, base, 800x608, 300 tokens, no checkpointing",
        "device": torch.cuda.get_device_name()
        if args.device == "cuda"
        else f"cpu ({os.cpu_count()} cores)",
        "speedup": results["plain"]["median_s"] / results["sdpa"]["median_s"],
        "memory_ratio": results["sdpa"]["peak_mb"] / results["plain"]["peak_mb"],
        "max_abs_diff": (features["sdpa"] - features["plain"]).abs().max().item(),
        "targets": {"speedup": ">= 1.5", "memory_ratio": "<= 0.6", "max_abs_diff": "<= 1e-4"},
        **{f"{k}_{v}": results[k][v] for k in results for v in ("median_s", "peak_mb")},
    }
    write_result(summary, args.out)


if __name__ == "__main__":
    main()
