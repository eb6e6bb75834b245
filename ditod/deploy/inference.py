"""An inference run over pages: their text where the model reads it, detection in batches (in
this process or on a Ray cluster), each page's outputs written as it is done
(:mod:`.run_outputs`)."""

import io
import json
from functools import partial
from pathlib import Path

import torch

from ..cli import RunInterrupted, error_line
from ..pages.ocr_runner import PAGE_TIMEOUT
from ..pages.page_inputs import PageInput
from .predictor import LayoutPredictor, Predictor
from .run_outputs import (
    InferenceSummary,
    PageOutputs,
    PageText,
    RunWriter,
    page_detections,
)

__all__ = ["DEFAULT_BATCH_SIZE", "DetectorActor", "run_inference", "run_inference_on_ray"]

DEFAULT_BATCH_SIZE = 1  # pages per forward on CPU: the fastest (benchmarks/inference_batch.py)


def run_inference(
    predictor: Predictor,
    pages: list[PageInput],
    out_dir,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    ocr_root=None,
    ocr_engine: str = "rapidocr",
    ocr_workers=None,
    ocr_page_timeout=PAGE_TIMEOUT,
    text_layer: bool = True,
    outputs: PageOutputs | None = None,
) -> InferenceSummary:
    """Detect on ``pages`` and write into ``out_dir``:

    - ``predictions/<name>.json``: source, page size, detections (:func:`page_detections`) and
      regions (:class:`PageOutputs`);
    - ``overlays/<name>.png``: the page with its detections drawn;
    - ``coco_instances_results.json`` (COCO results: image ids 1.. in page order, category ids
      1..K in model order) and ``coco_pages.json`` (their ``images`` and ``categories``);
    - ``ocr/<name>.json`` for a text-reading model when ``ocr_root`` is not given.

    Pages whose predictions and overlay an earlier run wrote are not detected again (the COCO
    files cover them). A page that cannot be read (image, OCR JSON) is logged, counted and
    skipped.
    """
    text = PageText(ocr_root, ocr_engine, ocr_workers, ocr_page_timeout, text_layer)
    writer = RunWriter.start(out_dir, pages, predictor.class_names, outputs, text,
                              predictor.uses_text)  # fmt: skip
    ocr_files, todo = writer.ocr_files, writer.pending
    try:
        for start in range(0, len(todo), batch_size):
            batch, inputs = [], []
            for page in todo[start : start + batch_size]:
                try:
                    ocr_file = ocr_files.get(page.name) if predictor.uses_text else None
                    inputs.append(predictor.map_page(page.image, ocr_file))
                    batch.append(page)
                except Exception as error:
                    writer.page_failed(page, error_line(error))
            for page, mapped, instances in _detect(predictor, batch, inputs, writer):
                detections = page_detections(instances, predictor.class_names)
                status = mapped.get("text_status")
                writer.page_done(page, mapped["width"], mapped["height"], detections, None, status)
    except KeyboardInterrupt:
        writer.progress.close()
        raise RunInterrupted(writer.summary.done) from None
    return writer.finish()


def _detect(predictor, pages, inputs, writer):
    """``(page, input, instances)`` of a batch; if the batch fails, its pages one by one, so
    that a page the detector fails on fails alone."""
    if not inputs:
        return []
    try:
        return list(zip(pages, inputs, predictor(inputs)))
    except Exception as error:
        if len(inputs) == 1:
            writer.page_failed(pages[0], error_line(error))
            return []
    found = []
    for page, mapped in zip(pages, inputs):
        found += _detect(predictor, [page], [mapped], writer)
    return found


class DetectorActor:
    """A predictor (:class:`LayoutPredictor`, or any with its interface) on a Ray worker: page
    image bytes (and OCR JSON text) in, ``(width, height, detections, class names)`` out."""

    def __init__(self, make_predictor, device: str, threads: int):
        if device == "cpu":
            torch.set_num_threads(threads)
        self.predictor = make_predictor()

    def detect(self, image: bytes, suffix: str, ocr_text: str | None):
        """Pages are read from memory: nothing is written on the worker's machine."""
        ocr_page = None if ocr_text is None else json.loads(ocr_text)
        mapped = self.predictor.map_page(io.BytesIO(image), ocr_page)
        (instances,) = self.predictor([mapped])
        detections = page_detections(instances, self.predictor.class_names)
        names = self.predictor.class_names
        return mapped["width"], mapped["height"], detections, names, mapped.get("text_status")


def run_inference_on_ray(
    cfg,
    pages: list[PageInput],
    out_dir,
    address: str,
    make_predictor=None,
    *,
    workers=None,
    threads: int = 1,
    ocr_root=None,
    ocr_engine: str = "rapidocr",
    ocr_page_timeout=PAGE_TIMEOUT,
    text_layer: bool = True,
    page_timeout=None,
    outputs: PageOutputs | None = None,
) -> InferenceSummary:
    """:func:`run_inference` with detection (and OCR) on a Ray cluster: ``workers`` actors
    (default: as many as the cluster holds), each holding ``make_predictor()`` (picklable;
    default a :class:`LayoutPredictor` of ``cfg``) on one GPU when ``MODEL.DEVICE`` is CUDA,
    else on ``threads`` CPUs. Outputs are written here, per page."""

    uses_text = not cfg.MODEL.LAYOUTLMV3.IMAGE_ONLY
    text = PageText(ocr_root, ocr_engine, None, ocr_page_timeout, text_layer, address)
    writer = RunWriter.start(out_dir, pages, None, outputs, text, uses_text)
    ocr_files = writer.ocr_files
    todo = []
    for page in writer.pending:
        ocr_file = ocr_files.get(page.name) if uses_text else None
        if ocr_file is not None and not Path(ocr_file).is_file():
            writer.page_failed(page, f"{ocr_file}: OCR JSON not found")
        else:
            todo.append(page)

    def payload(page):
        ocr_file = ocr_files.get(page.name) if uses_text else None
        text = Path(ocr_file).read_text(encoding="utf-8") if ocr_file else None
        return page.image.read_bytes(), page.image.suffix, text

    gpus = 1 if cfg.MODEL.DEVICE.startswith("cuda") else 0
    make_predictor = make_predictor or partial(LayoutPredictor, cfg)
    actor_args = (make_predictor, cfg.MODEL.DEVICE, threads)
    try:
        _run_detectors_on_ray(
            address, actor_args, todo, payload, writer, workers, threads, gpus, page_timeout
        )
    except KeyboardInterrupt:
        writer.progress.close()
        raise RunInterrupted(writer.summary.done) from None
    return writer.finish()


def _run_detectors_on_ray(
    address, actor_args, todo, payload, writer, workers, threads, gpus, page_timeout
) -> None:
    from ..pages.ray_pool import run_on_ray

    run_on_ray(
        address,
        DetectorActor,
        actor_args,
        "detect",
        todo,
        payload,
        lambda page, result: writer.page_done(page, *result),
        writer.page_failed,
        workers=workers,
        cpus=1 if gpus else threads,
        gpus=gpus,
        item_timeout=page_timeout,
    )
