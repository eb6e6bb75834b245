"""OCR and batch inference on a (local) Ray cluster: the same bytes as the local run, a killed
worker costs only its page, and a rerun does only what is missing."""

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

import pytest
import ray
import torch
from conftest import import_script
from detection_match import assert_same_detections, from_prediction_json
from detectron2.modeling import build_model
from ocr_test_engines import DyingEngine, OneLineEngine
from PIL import Image
from test_inference import CLASSES, tiny_cfg

from ditod import LayoutCheckpointer
from ditod.data import synthetic
from ditod.deploy.inference import run_inference, run_inference_on_ray
from ditod.deploy.predictor import LayoutPredictor
from ditod.pages.image_io import find_images
from ditod.pages.ocr_runner import PageJob, run_ocr, run_ocr_jobs
from ditod.pages.page_inputs import collect_pages

TESTS = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def local_ray():
    """A Ray instance of 2 CPUs on this machine; its workers import this folder's modules."""
    path = os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")]))
    ray.init(
        num_cpus=2,
        log_to_driver=False,
        logging_level=logging.WARNING,
        runtime_env={"env_vars": {"PYTHONPATH": path}},
    )
    yield "local"
    ray.shutdown()


def tree(folder: Path) -> dict:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*.json"))
    }


@pytest.mark.slow
def test_ocr_on_ray_writes_the_bytes_the_local_run_writes(local_ray, tmp_path):
    synthetic.generate(tmp_path / "pages", pages=2, seed=3, split_val=0.0)
    images = find_images(tmp_path / "pages" / "images")
    run_ocr(images, tmp_path / "pages" / "images", tmp_path / "local", workers=1, threads=1)
    summary = run_ocr(
        images, tmp_path / "pages" / "images", tmp_path / "ray", threads=1, ray_address=local_ray
    )
    assert (summary.done, summary.failed) == (2, [])
    local, remote = tree(tmp_path / "local"), tree(tmp_path / "ray")
    assert list(local) == ["en_00000.json", "en_00001.json"] and local == remote
    assert len(json.loads(local["en_00000.json"])["words"]) > 15


def pages(folder: Path, sizes) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    for i, size in enumerate(sizes):
        Image.new("RGB", size, "white").save(folder / f"p{i}.png")
    return find_images(folder)


def test_a_killed_ray_worker_costs_its_page_and_the_rerun_does_only_that(local_ray, tmp_path):
    images = pages(tmp_path / "images", [(100, 140), (100, 140), (140, 100), (100, 140)])
    out = tmp_path / "OCR"
    summary = run_ocr(
        images, tmp_path / "images", out, DyingEngine, workers=2, threads=1, ray_address=local_ray
    )
    assert summary.done == 3 and [Path(p).name for p, _ in summary.failed] == ["p2.png"]
    assert "Ray worker died" in summary.failed[0][1]
    assert "p2.png" in (out / "ocr_failed.txt").read_text()
    assert sorted(p.name for p in out.glob("*.json")) == ["p0.json", "p1.json", "p3.json"]
    assert not list(out.glob(".*.tmp"))  # no half-written file
    rerun = run_ocr(
        images, tmp_path / "images", out, OneLineEngine, threads=1, ray_address=local_ray, delay=0
    )
    assert (rerun.done, rerun.skipped, rerun.failed) == (1, 3, [])
    assert not (out / "ocr_failed.txt").exists()


def test_a_ray_actor_that_cannot_start_is_one_clear_error(local_ray, tmp_path):
    images = pages(tmp_path / "images", [(100, 140)])
    with pytest.raises(
        Exception,
        match="^an OCR worker could not start on Ray: ValueError: "
        r"first_tokens must be >= 0 \(0: whole lines\), got -1$",
    ):
        run_ocr_jobs(
            [PageJob(images[0], tmp_path / "p.json")],
            tmp_path / "f.txt",
            "rapidocr",
            threads=1,
            ray_address=local_ray,
            first_tokens=-1,
        )


@pytest.mark.slow
def test_inference_on_ray_equals_the_local_run_and_reruns_resume(local_ray, tmp_path):
    write_pages = import_script("tests/conftest.py").write_rectangle_coco
    write_pages(tmp_path / "data", num_images=3)
    torch.manual_seed(0)
    cfg = tiny_cfg()
    model = build_model(cfg)
    LayoutCheckpointer(model, str(tmp_path), class_names=CLASSES).save("model")
    cfg.MODEL.WEIGHTS = str(tmp_path / "model.pth")
    found, failed = collect_pages([tmp_path / "data" / "images"], tmp_path / "render")
    assert not failed and len(found) == 3

    local = run_inference(LayoutPredictor(cfg), found, tmp_path / "local")
    scratch = set(Path(tempfile.gettempdir()).iterdir())
    remote = run_inference_on_ray(cfg, found, tmp_path / "ray", local_ray)
    left = [p.name for p in set(Path(tempfile.gettempdir()).iterdir()) - scratch]
    assert not [name for name in left if name.startswith("ditod")], left  # pages read in memory
    assert (local.done, remote.done, remote.failed) == (3, 3, [])
    for page in found:
        a = json.loads((tmp_path / "local" / "predictions" / f"{page.name}.json").read_text())
        b = json.loads((tmp_path / "ray" / "predictions" / f"{page.name}.json").read_text())
        assert a["detections"]
        assert_same_detections(
            from_prediction_json(b),
            from_prediction_json(a),
            box_atol=0.05,
            score_atol=1e-3,
            cap=cfg.TEST.DETECTIONS_PER_IMAGE,
        )
    coco = json.loads((tmp_path / "ray" / "coco_pages.json").read_text())
    assert [c["name"] for c in coco["categories"]] == CLASSES

    results = (tmp_path / "ray" / "coco_instances_results.json").read_bytes()
    shutil.rmtree(tmp_path / "ray" / "overlays" / found[1].name.split("/")[0], ignore_errors=True)
    (tmp_path / "ray" / "overlays" / f"{found[1].name}.png").unlink(missing_ok=True)
    again = run_inference_on_ray(cfg, found, tmp_path / "ray", local_ray)
    assert (again.done, again.skipped) == (1, 2)  # only the page without its overlay
    assert (tmp_path / "ray" / "coco_instances_results.json").read_bytes() == results
    assert json.loads((tmp_path / "ray" / "coco_pages.json").read_text()) == coco
