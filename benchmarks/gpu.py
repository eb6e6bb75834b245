"""GPU numbers (CUDA only; not part of ``make test``): the backbone attention benchmark, one
base-size detector training step in fp16 and bf16 AMP with gradient checkpointing off and on, and
batched inference throughput (pages/s) of the image-only and text-fused base detectors at
800×608. Writes ``benchmarks/results/gpu.json`` with the GPU's name, after every configuration
(a failure keeps what was measured; ``complete`` says whether the run finished).

Pages carry 150..450 text tokens (seeded), so batches are padded as real ones are (padding
needs an attention mask: SDPA's fastest, mask-free path would flatter the text model). Timing
starts after warm-up steps that let a fresh fp16 GradScaler settle (its first steps overflow
and skip the optimizer); steps the scaler still skipped are counted. Peak memory is taken per
configuration after ``gc.collect()`` and ``torch.cuda.empty_cache()``. fp32 numbers run with
TF32 matmuls as the run's settings say (recorded: ``tf32_matmul``, ``tf32_cudnn``).

    python benchmarks/gpu.py [--batch-sizes 1 8 16] [--out benchmarks/results/gpu.json]
    python benchmarks/gpu.py --smoke    # the same code paths with the tiny model on the CPU

Published reference: LayoutLMv3-B Cascade R-CNN at 9 pages/s (DocLayout-YOLO paper).
"""

import argparse
import gc
import itertools
import subprocess
import sys
from pathlib import Path

import ditod  # noqa: F401  (its shims must apply before detectron2 is imported)

# isort: split
import torch
from _harness import ROOT, measure, write_result
from detectron2.config import get_cfg
from detectron2.modeling import build_model
from detectron2.structures import Boxes, Instances
from detectron2.utils.events import EventStorage

from ditod import add_layoutlmv3_config
from ditod.engine.trainer import LayoutTrainStep

CONFIGS = {
    "image_only": (ROOT / "configs" / "publaynet" / "cascade_layoutlmv3_image.yaml", []),
    "text_gated": (ROOT / "configs" / "publaynet" / "cascade_layoutlmv3_text_gated.yaml", []),
}
SMOKE_CONFIGS = {
    "image_only": (
        ROOT / "configs" / "tiny" / "cascade_layoutlmv3_tiny.yaml",
        ["MODEL.LAYOUTLMV3.IMAGE_ONLY", True, "MODEL.LAYOUTLMV3.FUSION.TYPE", ""],
    ),
    "text_gated": (ROOT / "configs" / "tiny" / "cascade_layoutlmv3_tiny.yaml", []),
}
HEIGHT, WIDTH, TOKENS = 800, 608, (150, 450)
WARMUP_STEPS, TIMED_SECONDS = 10, 5.0
DEVICE = "cuda"


def fresh_memory() -> None:
    """Free what the previous configuration left, so each peak is its own."""
    gc.collect()
    if DEVICE == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def base_cfg(kind: str, **overrides):
    path, options = CONFIGS[kind]
    cfg = get_cfg()
    add_layoutlmv3_config(cfg)
    cfg.merge_from_file(str(path))
    cfg.MODEL.DEVICE = DEVICE
    cfg.MODEL.LAYOUTLMV3.CONFIG = ""  # the SIZE preset; no pretrained weights are read
    cfg.MODEL.LAYOUTLMV3.TEXT.TOKENIZER = ""  # inputs below carry token ids directly
    cfg.merge_from_list([*options, *(x for pair in overrides.items() for x in pair)])
    return cfg


def page(with_text: bool, training: bool, generator) -> dict:
    """One synthetic 800×608 page; boxes for training, 150..450 text tokens when
    ``with_text``."""
    image = torch.randint(0, 256, (3, HEIGHT, WIDTH), dtype=torch.uint8, generator=generator)
    data = {"image": image, "height": HEIGHT, "width": WIDTH}
    if with_text:
        tokens = int(torch.randint(TOKENS[0], TOKENS[1] + 1, (), generator=generator))
        corner = torch.randint(0, 900, (tokens, 2), generator=generator)
        data["input_ids"] = torch.randint(5, 50000, (tokens,), generator=generator)
        data["bbox"] = torch.cat([corner, corner + 50], dim=1)
    if training:
        boxes = torch.tensor([[50.0, 60, 550, 200], [50, 250, 300, 700], [320, 250, 560, 500]])
        instances = Instances((HEIGHT, WIDTH))
        instances.gt_boxes = Boxes(boxes)
        instances.gt_classes = torch.tensor([0, 3, 4])
        data["instances"] = instances
    return data


def training_step(amp_dtype, checkpointing: bool, warmup: int, min_run_time: float) -> dict:
    """Median seconds and peak GPU memory of base text-fused training steps (batch 2), timed
    for ``min_run_time`` seconds after ``warmup`` steps; with fp16, how many timed steps the
    GradScaler skipped."""
    fresh_memory()
    cfg = base_cfg("text_gated", **{"MODEL.LAYOUTLMV3.GRADIENT_CHECKPOINTING": checkpointing})
    torch.manual_seed(0)
    model = build_model(cfg)
    generator = torch.Generator().manual_seed(0)
    batch = [page(True, True, generator) for _ in range(2)]
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    step = LayoutTrainStep(
        model, itertools.repeat(batch), optimizer, amp_dtype=amp_dtype, clip_norm=1.0
    )
    counts = {"steps": 0, "skipped": 0}  # steps run, steps whose update the scaler skipped

    def one_step():
        storage.iter = step.iter = counts["steps"]
        scale = step.grad_scaler.get_scale()  # 1.0, unchanged, when the scaler is disabled
        step.run_step()
        counts["steps"] += 1
        counts["skipped"] += step.grad_scaler.get_scale() < scale

    with EventStorage(0) as storage:
        for _ in range(warmup):
            one_step()
        counts["skipped"] = 0
        timing = measure(one_step, min_run_time)
    peak = torch.cuda.max_memory_allocated() / 2**20 if DEVICE == "cuda" else None
    return {
        "s_per_step": timing.median,
        "peak_mb": peak,
        "timed_steps": len(timing.raw_times) * timing.number_per_run,
        "scaler_skipped_steps": counts["skipped"],  # of all the steps after the warm-up
    }


def inference_throughput(kind: str, batch_size: int, amp_dtype, min_run_time: float) -> float:
    """Pages/s of batched inference (AMP ``amp_dtype``; None = fp32), from the median time of a
    batch."""
    fresh_memory()
    cfg = base_cfg(kind)
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    generator = torch.Generator().manual_seed(0)
    batch = [page(kind != "image_only", False, generator) for _ in range(batch_size)]
    with (
        torch.inference_mode(),
        torch.autocast(DEVICE, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None),
    ):
        return batch_size / measure(lambda: model(batch), min_run_time).median


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8, 16])
    parser.add_argument(
        "--out", default="benchmarks/results/gpu.json", help="relative to the current folder"
    )
    parser.add_argument("--smoke", action="store_true", help="tiny model on the CPU, no output")
    args = parser.parse_args()
    out = Path(args.out).resolve()  # one folder for both results, wherever a script runs
    global CONFIGS, DEVICE
    if args.smoke:
        CONFIGS, DEVICE = SMOKE_CONFIGS, "cpu"
        amp = (("bf16", torch.bfloat16),)
        inference_dtypes = (("fp32", None), ("bf16", torch.bfloat16))
    elif not torch.cuda.is_available():
        print("benchmarks/gpu.py: no CUDA device on this machine; nothing measured")
        return
    else:
        amp = (("fp16", torch.float16), ("bf16", torch.bfloat16))
        inference_dtypes = (("fp32", None), ("fp16", torch.float16))
        backbone_json = out.with_name("backbone_attention_cuda.json")
        script = Path(__file__).with_name("backbone_attention.py")
        command = [sys.executable, str(script), "--device", "cuda", "--out", str(backbone_json)]
        subprocess.run(command, check=True, cwd=ROOT)
    results = {}

    def record(key, value, complete=False) -> None:
        results[key] = value
        print(key, value, flush=True)
        if args.smoke:
            return
        image_only = [v for k, v in results.items() if k.startswith("infer_image_only")]
        write_result(
            {
                "benchmark": "GPU: base detector training step (AMP fp16/bf16, checkpointing "
                f"off/on) and batched inference at {HEIGHT}×{WIDTH} (image-only, text-fused with "
                f"{TOKENS[0]}..{TOKENS[1]} tokens per page); backbone attention in "
                f"{backbone_json.name}",
                "device": torch.cuda.get_device_name(),
                "torch": torch.__version__,
                "cuda": torch.version.cuda,
                "tf32_matmul": torch.backends.cuda.matmul.allow_tf32,
                "tf32_cudnn": torch.backends.cudnn.allow_tf32,
                "complete": complete,
                "best_image_only_pages_per_s": max(image_only, default=None),
                **results,
                "targets": {"best_image_only_pages_per_s": ">= 30 (H100; reference 9)"},
            },
            out,
        )

    warmup, seconds = (1, 0.1) if args.smoke else (WARMUP_STEPS, TIMED_SECONDS)
    for dtype_name, dtype in amp:
        for checkpointing in (False, True):
            key = f"train_{dtype_name}_checkpointing_{'on' if checkpointing else 'off'}"
            record(key, training_step(dtype, checkpointing, warmup, seconds))
    configurations = [
        (kind, batch_size, dtype_name, dtype)
        for kind in CONFIGS
        for batch_size in ([1, 2] if args.smoke else args.batch_sizes)
        for dtype_name, dtype in inference_dtypes
    ]
    for index, (kind, batch_size, dtype_name, dtype) in enumerate(configurations):
        key = f"infer_{kind}_batch{batch_size}_{dtype_name}_pages_per_s"
        record(
            key,
            inference_throughput(kind, batch_size, dtype, seconds),
            complete=index == len(configurations) - 1,
        )


if __name__ == "__main__":
    main()
