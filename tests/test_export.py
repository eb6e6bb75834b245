"""Export (ONNX) of the image-only and the text-fused detector, equal to eager on
pages of other sizes and token counts; int8; ONNX Runtime inference through tools/infer.py."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
import torch
from conftest import import_script, write_annotation_ocr, write_rectangle_coco
from detection_match import as_detections, detections_of, from_prediction_json
from detection_match import assert_same_detections as match_detections
from detectron2.modeling import build_model
from test_inference import CLASSES, CONFIG, tiny_cfg

from ditod import LayoutCheckpointer
from ditod.data.mapper import LayoutDatasetMapper
from ditod.deploy.export import PageDetector, export_model
from ditod.deploy.onnx_predictor import OnnxLayoutPredictor
from ditod.deploy.predictor import LayoutPredictor, Predictor

ROOT = Path(__file__).resolve().parents[1]
export_cli = import_script("tools/export.py")


def random_detector(cfg):
    """A tiny random detector whose heads score boxes differently (untrained ones score all
    alike, which would make any order of equal scores right)."""
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    for parameter in model.roi_heads.parameters():
        torch.nn.init.normal_(parameter, std=0.05)
    return model


@pytest.fixture(scope="module")
def two_sizes(tmp_path_factory):
    """Two pages of different sizes (160×128 and 128×176) with OCR JSON, as test-time inputs
    of 400×320 and 320×440."""
    root = tmp_path_factory.mktemp("pages")
    found = []
    for name, size in (("wide", (160, 128)), ("tall", (128, 176))):
        coco = write_rectangle_coco(root / name, num_images=1, size=size, seed=len(found))
        write_annotation_ocr(coco, root / name / "OCR", line_height=6)
        found.append(
            (root / name / "images" / "page_001.png", root / name / "OCR" / "page_001.json")
        )
    return found


def mapped(cfg, pages):
    mapper = LayoutDatasetMapper(cfg, is_train=False)
    return [mapper({"file_name": str(image), "ocr_file": str(ocr)}) for image, ocr in pages]


CAP = tiny_cfg().TEST.DETECTIONS_PER_IMAGE  # detections a page keeps at most


def assert_same_detections(got, expected):
    """The exported model's (boxes, classes, scores) equal eager's as matched sets, within
    1e-2 px and 1e-4, on a page where the random model gives many detections of spread scores."""
    want = as_detections(*expected)
    assert len(want) > 10 and np.std([score for *_, score in want]) > 0.01
    match_detections(as_detections(*got), want, cap=CAP)


def assert_onnx_equals_eager(model, page, path):
    """Export ``model`` traced on ``page`` to ``path``, run the file with ONNX Runtime on the
    same page and compare with eager (:func:`assert_same_detections`)."""
    export_model(model, page, path)
    detector = PageDetector(model)
    inputs = detector.example_inputs(page)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {n: x.numpy() for n, x in zip(detector.input_names, inputs)})
    with torch.no_grad():
        expected = detector(*inputs)
    assert_same_detections(got, expected)


@pytest.mark.parametrize("text", [False, True], ids=["image_only", "text_fused"])
def test_export_equals_eager_on_pages_of_other_sizes(text, two_sizes, bpe_folder, tmp_path):
    cfg = tiny_cfg(bpe_folder if text else None)
    model = random_detector(cfg)
    first, second = mapped(cfg, two_sizes)
    assert first["image"].shape[1:] != second["image"].shape[1:]
    if text:
        assert len(first["input_ids"]) != len(second["input_ids"])
    path = export_model(
        model, first, tmp_path / "model.onnx", config=cfg.dump(), class_names=CLASSES
    )
    assert not model.training  # left as it was
    detector = PageDetector(model)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    metadata = session.get_modelmeta().custom_metadata_map
    assert json.loads(metadata["class_names"]) == CLASSES
    assert json.loads(metadata["inputs"]) == list(detector.input_names)

    def run(*inputs):
        return session.run(None, dict(zip(detector.input_names, (x.numpy() for x in inputs))))

    for page in (first, second):
        inputs = detector.example_inputs(page)
        with torch.no_grad():
            expected, got = detector(*inputs), run(*inputs)
        assert_same_detections(got, expected)
    if text:  # the tokens are graph inputs, not constants of the trace
        inputs = detector.example_inputs(first)
        other_ids = inputs[1].flip(0)
        with torch.no_grad():
            expected = detector(inputs[0], other_ids, inputs[2])
            got, with_first_ids = run(inputs[0], other_ids, inputs[2]), run(*inputs)
        assert_same_detections(got, expected)
        assert not np.allclose(np.asarray(with_first_ids[2]), expected[2].numpy(), atol=1e-4)


def test_text_model_needs_a_sample_page_with_text(bpe_folder, two_sizes, tmp_path):
    cfg = tiny_cfg(bpe_folder)
    page = mapped(cfg, two_sizes[:1])[0]
    del page["input_ids"], page["bbox"]
    with pytest.raises(ValueError, match="the sample page has no input_ids, bbox"):
        export_model(random_detector(cfg), page, tmp_path / "m.onnx")


@pytest.fixture(scope="module")
def text_checkpoint(tmp_path_factory, bpe_folder):
    folder = tmp_path_factory.mktemp("weights")
    model = random_detector(tiny_cfg(bpe_folder))
    LayoutCheckpointer(model, str(folder), class_names=CLASSES).save("model_final")
    return folder / "model_final.pth"


def export_opts(tokenizer, weights):
    return [
        "MODEL.LAYOUTLMV3.TEXT.TOKENIZER",
        str(tokenizer),
        "MODEL.ROI_HEADS.NUM_CLASSES",
        "2",
        "MODEL.ROI_HEADS.SCORE_THRESH_TEST",
        "0.05",
        "MODEL.WEIGHTS",
        str(weights),
        "TEST.PRECISION",
        "fp32",
    ]


def infer(*args):
    command = [sys.executable, str(ROOT / "tools" / "infer.py"), *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=ROOT)


@pytest.mark.slow
def test_infer_with_onnxruntime_writes_what_pytorch_writes(
    text_checkpoint, bpe_folder, two_sizes, tmp_path
):
    image, ocr = two_sizes[0]
    opts = export_opts(bpe_folder, text_checkpoint)
    code = export_cli.main(
        [
            "--config-file",
            str(CONFIG),
            "--sample-image",
            str(image),
            "--sample-ocr",
            str(ocr),
            "--output",
            str(tmp_path / "m.onnx"),
            *opts,
        ]
    )
    assert code == 0
    ocr_root = tmp_path / "ocr"
    ocr_root.mkdir()
    inputs = []
    for k, (image, ocr) in enumerate(two_sizes):
        inputs.append(tmp_path / f"page{k}.png")
        inputs[-1].write_bytes(image.read_bytes())
        (ocr_root / f"page{k}.json").write_bytes(ocr.read_bytes())
    common = ["--input", *inputs, "--ocr-root", ocr_root]
    eager = infer(
        "--config-file",
        CONFIG,
        *common,
        "--output",
        tmp_path / "eager",
        "--score-threshold",
        0.05,
        *opts,
    )
    assert eager.returncode == 0, eager.stderr[-3000:]
    onnx = infer(
        "--backend",
        "onnxruntime",
        "--model",
        tmp_path / "m.onnx",
        *common,
        "--output",
        tmp_path / "onnx",
    )
    assert onnx.returncode == 0, onnx.stderr[-3000:]
    for k in range(2):
        ours = json.loads((tmp_path / "onnx" / "predictions" / f"page{k}.json").read_text())
        theirs = json.loads((tmp_path / "eager" / "predictions" / f"page{k}.json").read_text())
        assert len(theirs["detections"]) > 5
        match_detections(from_prediction_json(ours), from_prediction_json(theirs), cap=CAP)
        regions = [[r["bbox"] for r in page["regions"]] for page in (ours, theirs)]
        np.testing.assert_allclose(*regions, atol=1e-2 + 1e-9)  # same reading order

    refused = infer(
        "--backend",
        "onnxruntime",
        "--model",
        tmp_path / "m.onnx",
        *common,
        "--output",
        tmp_path / "x",
        "--score-threshold",
        0.5,
    )
    assert refused.returncode == 2
    assert "exported with score threshold 0.05" in refused.stderr


def test_infer_cli_errors_for_onnxruntime(tmp_path):
    no_model = infer("--backend", "onnxruntime", "--input", "p.png", "--output", tmp_path)
    assert no_model.returncode == 2 and "--backend onnxruntime needs --model" in no_model.stderr
    (tmp_path / "plain.onnx").write_bytes(_plain_onnx())
    plain = infer(
        "--backend",
        "onnxruntime",
        "--model",
        tmp_path / "plain.onnx",
        "--input",
        "p.png",
        "--output",
        tmp_path / "o",
    )
    assert plain.returncode == 2
    assert "plain.onnx: no config in its metadata: export the model with tools/export.py" in (
        plain.stderr
    )


def _plain_onnx() -> bytes:
    """An ONNX model not written by tools/export.py (no metadata)."""
    from onnx import TensorProto, helper

    x, y = (helper.make_tensor_value_info(name, TensorProto.FLOAT, [1]) for name in "xy")
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g", [x], [y])
    return helper.make_model(graph).SerializeToString()


def test_int8_export_and_predictors(text_checkpoint, bpe_folder, two_sizes, tmp_path):
    """int8 files hold the linear layers' weights as int8 MatMulInteger weights, quantized at
    export or at load alike; LayoutPredictor at TEST.PRECISION int8 swaps in int8 linears whose
    features stay close to the float ones. (Accuracy on a trained model:
    benchmarks/quantization.py.)"""
    import onnx

    cfg = tiny_cfg(bpe_folder, text_checkpoint)
    page = mapped(cfg, two_sizes)[0]
    model = build_model(cfg).eval()
    LayoutCheckpointer(model).load(str(text_checkpoint))
    fp32 = export_model(model, page, tmp_path / "fp32.onnx", config=cfg.dump())
    int8 = export_model(model, page, tmp_path / "int8.onnx", config=cfg.dump(), quantize="int8")
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert fp32.stat().st_size - int8.stat().st_size > 0.7 * sum(
        m.weight.numel() * 4 for m in linears
    )  # 4 bytes a weight → 1
    ops = [node.op_type for node in onnx.load(str(int8)).graph.node]
    assert ops.count("MatMulInteger") >= len(linears)

    onnx_predictor = OnnxLayoutPredictor(int8)
    assert isinstance(onnx_predictor, Predictor)  # what run_inference and Ray actors call
    exported = onnx_predictor([page])[0]
    at_load = OnnxLayoutPredictor(fp32, precision="int8")([page])[0]
    assert len(exported) > 10
    match_detections(
        detections_of(exported), detections_of(at_load), box_atol=1e-4, score_atol=1e-6, cap=CAP
    )

    cfg.TEST.PRECISION = "int8"
    predictor = LayoutPredictor(cfg)
    assert isinstance(predictor, Predictor) and predictor.precision.precision == "int8"
    assert not [m for m in predictor.model.modules() if isinstance(m, torch.nn.Linear)]
    with torch.no_grad():
        float_maps = model.backbone(model.page_batch(model.preprocess_image([page]), [page]))
        int8_maps = predictor.model.backbone(
            predictor.model.page_batch(predictor.model.preprocess_image([page]), [page])
        )
    for name, expected in float_maps.items():
        error = (int8_maps[name] - expected).norm() / expected.norm()
        assert 0 < error < 0.05, name
    assert len(predictor([page])[0]) > 10

    cfg.MODEL.DEVICE = "cuda"
    with pytest.raises(ValueError, match=r"TEST\.PRECISION int8 runs on the CPU; on CUDA use"):
        LayoutPredictor(cfg)
    with pytest.raises(ValueError, match=r"int8 weights: export it without --quantize for fp32"):
        OnnxLayoutPredictor(int8, precision="fp32")
    with pytest.raises(ValueError, match=r"no bf16 on x86 CPUs: use --backend pytorch"):
        OnnxLayoutPredictor(fp32, precision="bf16")
