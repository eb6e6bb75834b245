"""Training steps of the detector on this machine: iterations/s of the tiny text-fused config at
page sizes 512 → 1024 (short side), and the peak memory of one base-size training step against
the number of text tokens (0, 100, 300, 510: the most LayoutLMv3 takes), each in its own
process, drawn as a PNG.

    python benchmarks/training_step.py [--device cpu|cuda] [--out results.json]
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

import ditod  # noqa: F401  (its shims must apply before detectron2 is imported)

# isort: split
import torch
from _harness import ROOT, measure, write_result
from detectron2.config import get_cfg
from detectron2.modeling import build_model
from detectron2.utils.events import EventStorage

from ditod import add_layoutlmv3_config
from ditod.data.datasets import load_layout_coco_json
from ditod.data.mapper import LayoutDatasetMapper
from ditod.data.synthetic import generate as generate_synthetic_pages
from ditod.file_io import atomic_path
from ditod.pages.ocr_json import ocr_folder_lines
from layoutlmv3.tokenization import train_bpe_tokenizer

TINY = ROOT / "configs" / "demo" / "cascade_layoutlmv3_tiny_synthetic.yaml"
BASE = ROOT / "configs" / "publaynet" / "cascade_layoutlmv3_text_gated.yaml"
TOKENS = (0, 100, 300, 510)  # 510 + <s> + </s> = the 512 text positions of LayoutLMv3


def pages(scratch: Path, count: int = 8):
    """Synthetic pages (exact OCR) and a BPE tokenizer trained on their text."""
    paths = generate_synthetic_pages(scratch, pages=count, seed=9, split_val=0)
    tokenizer = train_bpe_tokenizer(ocr_folder_lines(scratch / "OCR"), scratch / "tok", 2000)
    records = load_layout_coco_json(paths["train"], scratch / "images", scratch / "OCR")
    return records, tokenizer


def config(path: Path, tokenizer: Path, device: str, **overrides):
    cfg = get_cfg()
    add_layoutlmv3_config(cfg)
    cfg.merge_from_file(str(path))
    cfg.MODEL.LAYOUTLMV3.CONFIG = ""  # the SIZE preset; no pretrained weights are read
    cfg.MODEL.LAYOUTLMV3.TEXT.TOKENIZER = str(tokenizer)
    cfg.MODEL.ROI_HEADS.NUM_CLASSES = 10
    cfg.MODEL.DEVICE = device
    cfg.AUG.DETR = False
    cfg.merge_from_list([x for pair in overrides.items() for x in pair])
    return cfg


def train_step(cfg, batch, autocast_dtype=None):
    """A new model of ``cfg`` and a function that runs one optimizer step (forward, backward,
    AdamW) of it on ``batch``, the forward under CPU autocast to ``autocast_dtype`` if given;
    call it inside an ``EventStorage``. Returns (model, step)."""
    torch.manual_seed(0)
    model = build_model(cfg).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step():
        with torch.autocast("cpu", dtype=autocast_dtype, enabled=autocast_dtype is not None):
            losses = model(batch)
        sum(losses.values()).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return model, step


def iterations_per_second(
    records, tokenizer, device, sizes=(512, 768, 1024), min_run_time=10.0
) -> dict:
    rates = {}
    for size in sizes:
        sizes = {"INPUT.MIN_SIZE_TRAIN": f"({size},)", "INPUT.MAX_SIZE_TRAIN": int(size * 4 / 3)}
        cfg = config(TINY, tokenizer, device, **sizes)
        mapper = LayoutDatasetMapper(cfg, is_train=True)
        batch = [mapper(r) for r in records[:2]]
        with EventStorage(0):
            rates[size] = 1 / measure(train_step(cfg, batch)[1], min_run_time).median
    return rates


def memory_child(tokens: int, device: str, tokenizer: str, record_file: str) -> None:
    """One base-size text-fused training step on a 512×384 page with ``tokens`` text tokens;
    prints the peak memory in MB (CUDA: max allocated; CPU: the process's peak RSS)."""
    record = json.loads(Path(record_file).read_text())
    cfg = config(
        BASE,
        Path(tokenizer),
        device,
        **{
            "INPUT.MIN_SIZE_TRAIN": "(384,)",
            "INPUT.MAX_SIZE_TRAIN": 512,
            "MODEL.LAYOUTLMV3.TEXT.MAX_TOKENS": 510,
            "SOLVER.AMP.ENABLED": False,
            "MODEL.MASK_ON": False,  # the synthetic pages' blocks are boxes, with no masks
        },
    )
    mapped = LayoutDatasetMapper(cfg, is_train=True)(record)
    ids = torch.randint(5, 1000, (tokens,))
    boxes = torch.randint(0, 500, (tokens, 2))
    mapped["input_ids"] = ids
    mapped["bbox"] = torch.cat([boxes, boxes + 20], dim=1)
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    with EventStorage(0):
        train_step(cfg, [mapped])[1]()
    if device.startswith("cuda"):
        peak = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"tokens": tokens, "peak_mb": peak}))


def memory_curve(records, tokenizer, device, scratch: Path) -> dict:
    record_file = scratch / "record.json"
    record_file.write_text(json.dumps(records[0]))
    curve = {}
    for tokens in TOKENS:
        result = subprocess.run(
            [
                sys.executable,
                __file__,
                "--memory-child",
                str(tokens),
                "--device",
                device,
                "--tokenizer",
                str(tokenizer),
                "--record",
                str(record_file),
            ],
            capture_output=True,
            text=True,
            cwd=ROOT,
        )
        if result.returncode:
            sys.exit(f"the {tokens}-token training step failed:\n{result.stderr[-3000:]}")
        curve[tokens] = json.loads(result.stdout.strip().splitlines()[-1])["peak_mb"]
    return curve


def plot(curve: dict, device: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 3.5))
    axes.plot(list(curve), list(curve.values()), marker="o")
    axes.set(
        xlabel="text tokens",
        ylabel="peak memory (MB)",
        title=f"one base-size training step, 512×384 page ({device})",
    )
    axes.grid(alpha=0.3)
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=120, bbox_inches="tight")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default="benchmarks/results/training_step.json")
    parser.add_argument("--memory-child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--tokenizer", help=argparse.SUPPRESS)
    parser.add_argument("--record", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child is not None:
        memory_child(args.memory_child, args.device, args.tokenizer, args.record)
        return
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        records, tokenizer = pages(scratch)
        rates = iterations_per_second(records, tokenizer, args.device)
        curve = memory_curve(records, tokenizer, args.device, scratch)
    out = Path(args.out)
    plot(curve, args.device, out.with_name("memory_vs_tokens.png"))
    name = torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu"
    summary = {
        "benchmark": "training step: tiny config it/s by page short side (batch 2); peak memory "
        "of a base-size text-fused step (no mask head) by text tokens (memory_vs_tokens.png)",
        "device": f"{name} ({os.cpu_count()} cores)",
        **{f"it_per_s_{size}": rate for size, rate in rates.items()},
        "scaling_1024_vs_512": rates[1024] / rates[512],
        **{f"peak_mb_{tokens}_tokens": mb for tokens, mb in curve.items()},
        "targets": {
            "it_per_s_512": "report",
            "scaling_1024_vs_512": "report",
            "peak_mb_510_tokens": "report",
        },
    }
    write_result(summary, out)


if __name__ == "__main__":
    main()
