"""int8 vs fp32 on CPU, PyTorch and ONNX Runtime backends, in one run: pages/s of the
base-size detector and of the demo model, and the demo model's AP on its validation pages.

    python benchmarks/quantization.py [--pages 2] [--rounds 2] [--demo output/demo] [--out F]

Every variant is what ``tools/infer.py`` runs: ``LayoutPredictor`` (``--quantize int8``: PyTorch
dynamic int8 ``nn.Linear``) and ``OnnxLayoutPredictor`` on files written by ``export_model``
(``--quantize int8``: ONNX Runtime dynamic int8 MatMul/Gemm). The base-size detector is the
image-only PubLayNet one with random weights (speed does not depend on them) on synthetic pages
mapped as inference maps them (``INPUT.MIN_SIZE_TEST`` 800); the demo model is ``make demo``'s
(run it first). One more variant shows what the box stage costs: int8 with
``MODEL.RPN.POST_NMS_TOPK_TEST`` 300 instead of 1000 proposals (pages have < 100 blocks).
"""

import argparse
import collections
import contextlib
import json
import statistics
import tempfile
from pathlib import Path

import ditod  # noqa: F401  (its shims must apply before detectron2 is imported)

# isort: split
import torch
from _harness import ROOT, stopwatch, write_result
from detectron2.modeling import build_model
from faster_coco_eval import COCO, COCOeval_faster

from ditod import LayoutCheckpointer
from ditod.config import load_config, merge_options
from ditod.data.mapper import LayoutDatasetMapper
from ditod.data.synthetic import generate as generate_synthetic_pages
from ditod.deploy.export import export_model
from ditod.deploy.onnx_predictor import OnnxLayoutPredictor
from ditod.deploy.predictor import LayoutPredictor
from ditod.pages.image_io import find_images
from ditod.pages.ocr_runner import available_cores

FEWER_PROPOSALS = ["MODEL.RPN.POST_NMS_TOPK_TEST", "300"]
MATMULS = {
    "MatMul",
    "FusedMatMul",
    "DynamicQuantizeMatMul",
    "MatMulIntegerToFloat",
    "Gemm",
    "FusedGemm",
}
CONVOLUTIONS = {"Conv", "FusedConv", "ConvTranspose", "ConvInteger"}


def pages_per_second(variants: dict, inputs: list, rounds: int) -> dict:
    """Per variant, pages/s from the median time of a page; the variants take turns page by
    page over ``rounds`` rounds (a slow spell of the machine hits all alike), after a warm-up."""
    times = {name: [] for name in variants}
    for predictor in variants.values():
        predictor(inputs[:1])
    for _ in range(rounds):
        for page in inputs:
            for name, predictor in variants.items():
                with stopwatch() as elapsed:
                    predictor([page])
                times[name].append(elapsed.seconds)
    return {name: 1 / statistics.median(seconds) for name, seconds in times.items()}


def op_group(op: str, shapes: list) -> str:
    """Where an ONNX Runtime kernel's time goes: ``linear`` (a matmul by weights: the transformer's
    and the box heads' linear layers), ``attention`` (the matmuls of two activations, e.g. the
    (B, heads, N, 64) queries by keys, and the softmax), ``convolution``, ``box pooling``
    (RoIAlign) or ``other``."""
    if op in MATMULS:
        return "attention" if sum(len(shape) == 4 for shape in shapes) >= 2 else "linear"
    if op == "Softmax":
        return "attention"
    if op in CONVOLUTIONS:
        return "convolution"
    return "box pooling" if op == "RoiAlign" else "other"


def onnx_seconds_by_op_group(path: Path, page: dict) -> dict:
    """Seconds of one page (after a warm-up run) per :func:`op_group`, from ONNX Runtime's
    profile of the model at ``path``."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.enable_profiling = True
    options.profile_file_prefix = str(path.with_suffix(""))
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    feeds = {"image": page["image"].float().numpy()}
    for _ in range(2):
        session.run(None, feeds)
    events = json.loads(Path(session.end_profiling()).read_text())
    last_run = [e for e in events if e.get("name") == "model_run"][-1]["ts"]
    kernels = [
        e
        for e in events
        if e.get("cat") == "Node" and e["ts"] >= last_run and e["name"].endswith("_kernel_time")
    ]
    seconds = collections.Counter()
    for event in kernels:
        args = event["args"]
        shapes = [next(iter(shape.values())) for shape in args.get("input_type_shape", [])]
        seconds[op_group(args["op_name"], shapes)] += event["dur"] / 1e6
    return {group: round(value, 2) for group, value in sorted(seconds.items())}


def with_test_keys(cfg, **keys):
    """A copy of ``cfg`` with these ``TEST`` keys (``PRECISION="int8"``, …)."""
    cfg = cfg.clone()
    cfg.defrost()
    for key, value in keys.items():
        setattr(cfg.TEST, key, value)
    return cfg


def predictors(cfg, sample: dict, folder: Path, class_names=()) -> dict:
    """The four variants (and int8 with fewer proposals) of the model ``cfg`` loads."""
    cfg = with_test_keys(cfg, PRECISION="fp32")
    pytorch = LayoutPredictor(cfg)
    onnx_fp32 = export_model(
        pytorch.model, sample, folder / "fp32.onnx", config=cfg.dump(), class_names=class_names
    )
    onnx_int8 = export_model(
        pytorch.model,
        sample,
        folder / "int8.onnx",
        config=cfg.dump(),
        class_names=class_names,
        quantize="int8",
    )
    fewer = cfg.clone()
    merge_options(fewer, FEWER_PROPOSALS)
    onnx_fewer = export_model(
        pytorch.model,
        sample,
        folder / "int8_300.onnx",
        config=fewer.dump(),
        class_names=class_names,
        quantize="int8",
    )
    return {
        "pytorch_fp32": pytorch,
        "pytorch_int8": LayoutPredictor(with_test_keys(cfg, PRECISION="int8")),
        "onnxruntime_fp32": OnnxLayoutPredictor(onnx_fp32),
        "onnxruntime_int8": OnnxLayoutPredictor(onnx_int8),
        "onnxruntime_int8_300_proposals": OnnxLayoutPredictor(onnx_fewer),
    }


@contextlib.contextmanager
def random_base_detector(config: str, num_pages: int):
    """The base-size detector of ``config`` with random weights (speed does not depend on them)
    saved in a scratch folder, and ``num_pages`` synthetic page images: yields ``(cfg with
    MODEL.WEIGHTS, image paths, scratch folder)``."""
    opts = ["MODEL.DEVICE", "cpu", "MODEL.LAYOUTLMV3.CONFIG", "", "MODEL.LAYOUTLMV3.SIZE", "base"]
    cfg = load_config(str(ROOT / config), opts)
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        torch.manual_seed(0)
        LayoutCheckpointer(build_model(cfg), str(scratch)).save("random")
        cfg.MODEL.WEIGHTS = str(scratch / "random.pth")
        generate_synthetic_pages(scratch / "pages", pages=num_pages, seed=2, split_val=0.0)
        yield cfg, find_images(scratch / "pages" / "images"), scratch


def base_speeds(config: str, num_pages: int, rounds: int) -> tuple[dict, str]:
    with random_base_detector(config, num_pages + 1) as (cfg, images, scratch):
        mapper = LayoutDatasetMapper(cfg, is_train=False)
        variants = predictors(cfg, mapper({"file_name": str(images[0])}), scratch)
        inputs = [mapper({"file_name": str(p)}) for p in images[1:]]
        speeds = pages_per_second(variants, inputs, rounds)
        print(f"base pages/s: {speeds}", flush=True)
        del variants
        profile = {
            name: onnx_seconds_by_op_group(scratch / f"{name}.onnx", inputs[0])
            for name in ("fp32", "int8")
        }
        print(f"base seconds by op group: {profile}", flush=True)
    height, width = inputs[0]["image"].shape[1:]
    return speeds, profile, f"{len(inputs)} synthetic pages at {width}x{height}, {rounds} rounds"


def page_detections(predictor, gt: COCO, images: Path, ocr: Path) -> dict:
    """image id → the ``Instances`` ``predictor`` finds on that page of the COCO ``gt``."""
    found = {}
    for image in gt.loadImgs(gt.getImgIds()):
        page = predictor.map_page(
            images / image["file_name"], ocr / Path(image["file_name"]).with_suffix(".json")
        )
        (found[image["id"]],) = predictor([page])
    return found


def ap_of(detections: dict, gt: COCO, class_names) -> float:
    """bbox AP (0..100) of :func:`page_detections` against ``gt``."""
    ids = {c["name"]: c["id"] for c in gt.loadCats(gt.getCatIds())}
    results = []
    for image_id, found in detections.items():
        boxes, scores = found.pred_boxes.tensor.tolist(), found.scores.tolist()
        for (x0, y0, x1, y1), c, s in zip(boxes, found.pred_classes.tolist(), scores):
            results.append(
                {
                    "image_id": image_id,
                    "score": s,
                    "category_id": ids[class_names[c]],
                    "bbox": [x0, y0, x1 - x0, y1 - y0],
                }
            )
    evaluation = COCOeval_faster(gt, gt.loadRes(results), "bbox", print_function=lambda *a: None)
    evaluation.evaluate()
    evaluation.accumulate()
    evaluation.summarize()
    return 100 * float(evaluation.stats[0])


def coco_ap(predictor, dataset: Path, images: Path, ocr: Path) -> tuple[float, int]:
    """bbox AP of ``predictor`` on a COCO json's pages, and the number of pages."""
    gt = COCO(str(dataset))
    detections = page_detections(predictor, gt, images, ocr)
    return ap_of(detections, gt, predictor.class_names), len(detections)


def demo_results(demo: Path) -> dict:
    train = demo / "train"
    if not (train / "model_final.pth").is_file():
        raise SystemExit(f"{train}/model_final.pth not found: run `make demo` first")
    cfg = load_config(
        str(train / "config.yaml"),
        ["MODEL.DEVICE", "cpu", "MODEL.WEIGHTS", str(train / "model_final.pth")],
    )
    data = demo / "data"
    with tempfile.TemporaryDirectory() as scratch:
        first = json.loads((data / "val.json").read_text())["images"][0]["file_name"]
        reference = LayoutPredictor(cfg)
        sample = reference.map_page(
            data / "images" / first, data / "OCR" / Path(first).with_suffix(".json")
        )
        variants = predictors(cfg, sample, Path(scratch), reference.class_names)
        results = {}
        for name, predictor in variants.items():
            ap, pages = coco_ap(predictor, data / "val.json", data / "images", data / "OCR")
            results[name] = {"ap": round(ap, 2)}
        speeds = pages_per_second(variants, [sample] * 4, rounds=3)
        for name, speed in speeds.items():
            results[name]["pages_per_s"] = round(speed, 3)
            print(f"demo {name}: {results[name]}", flush=True)
    return results, pages


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--config", default="configs/publaynet/cascade_layoutlmv3_image.yaml")
    parser.add_argument("--demo", default=str(ROOT / "output" / "demo"))
    parser.add_argument("--out", default="benchmarks/results/quantization.json")
    args = parser.parse_args()
    demo, demo_pages = demo_results(Path(args.demo))
    base, profile, base_pages = base_speeds(args.config, args.pages, args.rounds)
    fp32 = max(base["pytorch_fp32"], base["onnxruntime_fp32"])
    int8 = max(base["pytorch_int8"], base["onnxruntime_int8"])
    worst_int8_ap = min(demo["pytorch_int8"]["ap"], demo["onnxruntime_int8"]["ap"])
    summary = {
        "benchmark": f"int8 vs fp32 on CPU: base image-only detector ({Path(args.config).name}, "
        f"random weights) on {base_pages}; demo model AP on its {demo_pages} validation pages",
        "device": f"cpu ({available_cores()} cores), {torch.get_num_threads()} threads",
        **{f"pages_per_s_base_{k}": round(v, 4) for k, v in base.items()},
        **{f"ap_demo_{k}": v["ap"] for k, v in demo.items()},
        **{f"pages_per_s_demo_{k}": v["pages_per_s"] for k, v in demo.items()},
        # int8 at its best backend vs fp32 at its best: what a user gains by quantizing
        "speedup_base": round(int8 / fp32, 3),
        "speedup_base_vs_pytorch_fp32": round(int8 / base["pytorch_fp32"], 3),
        "speedup_base_int8_300_proposals_vs_pytorch_fp32": round(
            base["onnxruntime_int8_300_proposals"] / base["pytorch_fp32"], 3
        ),
        "ap_drop_demo": round(demo["pytorch_fp32"]["ap"] - worst_int8_ap, 2),
        # ONNX Runtime's profile of one base page: int8 pays on the linear layers only
        **{
            f"seconds_base_onnxruntime_{precision}_{group.replace(' ', '_')}": value
            for precision, groups in profile.items()
            for group, value in groups.items()
        },
        "speedup_base_linear_layers": round(
            profile["fp32"]["linear"] / profile["int8"]["linear"], 3
        ),
        "targets": {"speedup_base": ">= 1.8", "ap_drop_demo": "<= 1.0"},
    }
    write_result(summary, args.out)


if __name__ == "__main__":
    main()
