"""Inference precision on this CPU, side by side in one run: s/page of the base image-only
detector and the demo model's AP per ``TEST.PRECISION`` (fp32; bf16 with the fp32 FPN outputs
and the attention kernel its probe picks; the same with PyTorch's fused attention; bf16 under
plain autocast; int8 with the attention ``TEST.INT8_ATTENTION`` picks; int8 with fp32 attention),
the share of the fp32 boxes each finds again, and what ``auto`` chose here.

    python benchmarks/precision.py [--pages 2] [--rounds 2] [--demo output/demo] [--out F]

Every variant is the ``LayoutPredictor`` that ``tools/infer.py --precision`` runs. The base
detector has random weights (speed does not depend on them) and reads synthetic pages mapped as
inference maps them (``INPUT.MIN_SIZE_TEST`` 800); the demo model is ``make demo``'s (run it
first). "Plain autocast" is bf16 with ``TEST.FP32_MODULES`` empty: what costs the AP.
"""

import argparse
from pathlib import Path

import ditod  # noqa: F401  (its shims must apply before detectron2 is imported)

# isort: split
import torch
from _harness import ROOT, write_result
from detectron2.config import get_cfg
from detectron2.structures import pairwise_iou
from faster_coco_eval import COCO
from quantization import ap_of, page_detections, pages_per_second, random_base_detector

from ditod.config import add_layoutlmv3_config, load_config
from ditod.deploy.predictor import LayoutPredictor
from ditod.modeling.precision import (
    choose_attention_block,
    choose_int8_attention,
    choose_precision,
)

DEFAULTS = get_cfg()
add_layoutlmv3_config(DEFAULTS)
SHOWN = 0.5  # tools/infer.py's default score threshold: the boxes a user sees
# variant → config overrides; bf16 with this project's default fp32 modules, not those a saved
# config may hold
VARIANTS = {
    "fp32": {"TEST.PRECISION": "fp32"},
    "bf16": {"TEST.PRECISION": "bf16", "TEST.FP32_MODULES": DEFAULTS.TEST.FP32_MODULES},
    "bf16_fused_attention": {
        "TEST.PRECISION": "bf16",
        "TEST.FP32_MODULES": DEFAULTS.TEST.FP32_MODULES,
        "MODEL.LAYOUTLMV3.ATTENTION_QUERY_BLOCK": 0,
    },
    "bf16_plain_autocast": {"TEST.PRECISION": "bf16", "TEST.FP32_MODULES": []},
    "int8": {"TEST.PRECISION": "int8"},
    "int8_fp32_attention": {"TEST.PRECISION": "int8", "TEST.INT8_ATTENTION": "fp32"},
}


def predictor(cfg, variant: str) -> LayoutPredictor:
    cfg = cfg.clone()
    cfg.defrost()
    cfg.merge_from_list([item for pair in VARIANTS[variant].items() for item in pair])
    return LayoutPredictor(cfg)


def base_seconds(config: str, num_pages: int, rounds: int) -> tuple[dict, str]:
    with random_base_detector(config, num_pages) as (cfg, images, _):
        variants = {name: predictor(cfg, name) for name in VARIANTS}
        mapper = variants["fp32"].mapper
        inputs = [mapper({"file_name": str(p)}) for p in images]
        speeds = pages_per_second(variants, inputs, rounds)
    height, width = inputs[0]["image"].shape[1:]
    seconds = {name: round(1 / speed, 3) for name, speed in speeds.items()}
    print(f"base s/page: {seconds}", flush=True)
    return seconds, f"{len(inputs)} synthetic pages at {width}x{height}, {rounds} rounds"


def found_again(reference: list, other: list, iou: float = 0.9) -> float:
    """Share of the reference's boxes (all pages) that ``other`` has too: the same class and
    IoU >= ``iou``, each matched once."""
    found = total = 0
    for want, got in zip(reference, other):
        total += len(want)
        if not len(want) or not len(got):
            continue
        overlap = pairwise_iou(want.pred_boxes, got.pred_boxes)
        overlap[want.pred_classes[:, None] != got.pred_classes[None, :]] = 0
        free = torch.ones(len(got), dtype=torch.bool)
        for row in overlap:
            best = int(torch.where(free, row, torch.zeros_like(row)).argmax())
            if free[best] and row[best] >= iou:
                free[best] = False
                found += 1
    return found / max(total, 1)


def demo_results(demo: Path) -> tuple[dict, int]:
    train = demo / "train"
    if not (train / "model_final.pth").is_file():
        raise SystemExit(f"{train}/model_final.pth not found: run `make demo` first")
    cfg = load_config(
        str(train / "config.yaml"),
        ["MODEL.DEVICE", "cpu", "MODEL.WEIGHTS", str(train / "model_final.pth")],
    )
    data = demo / "data"
    gt = COCO(str(data / "val.json"))
    results, shown = {}, {}
    for name in VARIANTS:
        variant = predictor(cfg, name)
        found = page_detections(variant, gt, data / "images", data / "OCR")
        results[name] = {"ap": round(ap_of(found, gt, variant.class_names), 2)}
        shown[name] = [page[page.scores >= SHOWN] for page in found.values()]
        print(f"demo {name}: AP {results[name]['ap']}", flush=True)
    for name in VARIANTS:
        results[name]["fp32_boxes_found"] = round(found_again(shown["fp32"], shown[name]), 4)
        results[name]["boxes_also_in_fp32"] = round(found_again(shown[name], shown["fp32"]), 4)
    return results, len(gt.getImgIds())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--config", default="configs/publaynet/cascade_layoutlmv3_image.yaml")
    parser.add_argument("--demo", default=str(ROOT / "output" / "demo"))
    parser.add_argument("--out", default="benchmarks/results/precision.json")
    args = parser.parse_args()
    auto = choose_precision("auto", "cpu")
    _, attention = choose_attention_block(-1, "cpu")
    *_, int8_attention = choose_int8_attention("auto", -1)
    demo, demo_pages = demo_results(Path(args.demo))
    base, base_pages = base_seconds(args.config, args.pages, args.rounds)
    summary = {
        "benchmark": f"inference precision on CPU: base image-only detector "
        f"({Path(args.config).name}, random weights) s/page on {base_pages}; demo model AP on "
        f"its {demo_pages} validation pages",
        "device": f"cpu, {torch.get_num_threads()} threads",
        "auto_choice": auto.precision,
        "auto_reason": auto.reason,
        "bf16_attention": attention,
        "int8_attention": int8_attention,
        **{f"s_per_page_base_{name}": seconds for name, seconds in base.items()},
        **{f"ap_demo_{name}": result["ap"] for name, result in demo.items()},
        **{f"fp32_boxes_found_{name}": r["fp32_boxes_found"] for name, r in demo.items()},
        **{f"boxes_also_in_fp32_{name}": r["boxes_also_in_fp32"] for name, r in demo.items()},
        "speedup_bf16": round(base["fp32"] / base["bf16"], 3),
        "speedup_bf16_fused_attention": round(base["fp32"] / base["bf16_fused_attention"], 3),
        "speedup_bf16_plain_autocast": round(base["fp32"] / base["bf16_plain_autocast"], 3),
        "speedup_int8": round(base["fp32"] / base["int8"], 3),
        "speedup_int8_fp32_attention": round(base["fp32"] / base["int8_fp32_attention"], 3),
        "speedup_auto": round(base["fp32"] / base[auto.precision], 3),
        "ap_drop_bf16": round(demo["fp32"]["ap"] - demo["bf16"]["ap"], 2),
        "ap_drop_bf16_fused_attention": round(
            demo["fp32"]["ap"] - demo["bf16_fused_attention"]["ap"], 2
        ),
        "ap_drop_bf16_plain_autocast": round(
            demo["fp32"]["ap"] - demo["bf16_plain_autocast"]["ap"], 2
        ),
        "ap_drop_int8": round(demo["fp32"]["ap"] - demo["int8"]["ap"], 2),
        "ap_drop_int8_fp32_attention": round(
            demo["fp32"]["ap"] - demo["int8_fp32_attention"]["ap"], 2
        ),
        "targets": {
            "ap_drop_bf16": "<= 0.3",
            "fp32_boxes_found_bf16": "all (IoU >= 0.9, score >= 0.5)",
            "speedup_auto": ">= 3 on an AMX CPU",
            "speedup_int8": ">= 1.8 where the CPU has VNNI or AMX, at ap_drop_int8 <= 1",
        },
    }
    write_result(summary, args.out)


if __name__ == "__main__":
    main()
