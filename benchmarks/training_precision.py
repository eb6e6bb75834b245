"""A training step of the base image-only detector on the CPU, side by side in one run: fp32 and
bf16 autocast (``SOLVER.AMP``; attention through the kernel the trainer's probe picks, and
through PyTorch's fused kernel), each with the attention dropout of the hub's config (0.1) and
without it (``MODEL.LAYOUTLMV3.ATTENTION_DROPOUT 0``).

    python benchmarks/training_precision.py [--min-run-time 10] [--out F]

One step = forward, backward and the fused AdamW update on one synthetic page at the short side
608 (as ``benchmarks/training_step.py`` measures the GPU); the median step of those timed in
``--min-run-time`` seconds after a warm-up step (``torch.utils.benchmark``). With attention
dropout PyTorch's CPU attention falls back to its unfused path (matmuls in fp32 whatever the
autocast, an N x N dropout mask): that is where bf16 lost, before ``blocked_attention``.
"""

import argparse
import tempfile
from pathlib import Path

import ditod  # noqa: F401  (its shims must apply before detectron2 is imported)

# isort: split
import torch
from _harness import ROOT, measure, write_result
from detectron2.modeling import build_model
from detectron2.utils.events import EventStorage

from ditod.config import load_config
from ditod.data.datasets import load_layout_coco_json
from ditod.data.mapper import LayoutDatasetMapper
from ditod.data.synthetic import generate as generate_synthetic_pages
from ditod.modeling.precision import choose_attention_block, set_attention_query_block

CONFIG = "configs/publaynet/cascade_layoutlmv3_image.yaml"
# variant → (autocast dtype or None, attention dropout: -1 = the preset's 0.1, bf16 attention's
# query block: -1 = the probe's choice as the trainer makes it, 0 = PyTorch's fused kernel)
VARIANTS = {
    "fp32": (None, -1.0, 0),
    "bf16": (torch.bfloat16, -1.0, -1),
    "bf16_fused_attention": (torch.bfloat16, -1.0, 0),
    "fp32_no_attention_dropout": (None, 0.0, 0),
    "bf16_no_attention_dropout": (torch.bfloat16, 0.0, -1),
    "bf16_fused_attention_no_attention_dropout": (torch.bfloat16, 0.0, 0),
}


def step_seconds(
    record: dict, dtype, attention_dropout: float, block: int, min_run_time: float
) -> float:
    cfg = load_config(
        str(ROOT / CONFIG),
        [
            "MODEL.DEVICE",
            "cpu",
            "MODEL.LAYOUTLMV3.CONFIG",
            "",
            "MODEL.LAYOUTLMV3.SIZE",
            "base",
            "MODEL.MASK_ON",
            "False",
            "MODEL.ROI_HEADS.NUM_CLASSES",
            "10",
            "AUG.DETR",
            "False",
            "INPUT.MIN_SIZE_TRAIN",
            "(608,)",
            "INPUT.MAX_SIZE_TRAIN",
            "800",
            "MODEL.LAYOUTLMV3.ATTENTION_DROPOUT",
            str(attention_dropout),
        ],
    )
    torch.manual_seed(0)
    model = build_model(cfg).train()
    set_attention_query_block(model, choose_attention_block(block, "cpu")[0])
    batch = [LayoutDatasetMapper(cfg, is_train=True)(record)]
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)

    def step():
        with torch.autocast("cpu", dtype=dtype or torch.float32, enabled=dtype is not None):
            losses = model(batch)
        sum(losses.values()).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    with EventStorage(0):
        return measure(step, min_run_time).median


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--min-run-time", type=float, default=10.0, help="seconds timed each")
    parser.add_argument("--out", default="benchmarks/results/training_precision.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        paths = generate_synthetic_pages(scratch, pages=1, seed=2, split_val=0.0)
        (record,) = load_layout_coco_json(paths["train"], scratch / "images", scratch / "OCR")
        seconds = {}
        for name, (dtype, dropout, block) in VARIANTS.items():
            seconds[name] = round(step_seconds(record, dtype, dropout, block, args.min_run_time), 2)
            print(f"{name}: {seconds[name]} s/step", flush=True)
    summary = {
        "benchmark": "training step (fwd+bwd+AdamW) of the base image-only detector on CPU, "
        "one page at 608 short side, median step after a warm-up",
        "device": f"cpu, {torch.get_num_threads()} threads",
        "bf16_attention": choose_attention_block(-1, "cpu")[1],
        **{f"s_per_step_{name}": value for name, value in seconds.items()},
        "speedup_bf16": round(seconds["fp32"] / seconds["bf16"], 3),
        "speedup_bf16_fused_attention": round(seconds["fp32"] / seconds["bf16_fused_attention"], 3),
        "speedup_bf16_no_attention_dropout": round(
            seconds["fp32_no_attention_dropout"] / seconds["bf16_no_attention_dropout"], 3
        ),
        "speedup_no_attention_dropout_bf16_vs_fp32_with": round(
            seconds["fp32"] / seconds["bf16_no_attention_dropout"], 3
        ),
        "targets": {"speedup_bf16": ">= 1.8"},
    }
    write_result(summary, args.out)


if __name__ == "__main__":
    main()
