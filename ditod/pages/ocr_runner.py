"""Running OCR over pages: one page-text JSON per page image (:mod:`.ocr_json`).

Pages rendered from a PDF take their text from the PDF's text layer when it has a usable one
(:mod:`.pdf_text`, ~100× faster than OCR); the others are OCR'd by an engine of
:mod:`.engines`. Runs are resumable (pages whose JSON exists and is valid are skipped), parallel
(one engine per worker process, or per Ray actor), atomic (a JSON is written to a temporary file,
then renamed) and bounded: a degenerate page (too small, extreme aspect ratio) is skipped before
OCR, and a page that runs past the per-page time limit has its worker killed and is listed as
failed.
"""

import ctypes
import logging
import multiprocessing
import os
import queue
import signal
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from PIL import Image
from tqdm import tqdm

from ..cli import RunInterrupted, error_line
from ..file_io import printable, write_text_atomic
from .engines import EngineUnavailable, build_engine, engine_class
from .image_io import degenerate_page
from .ocr_json import is_valid_ocr_json, write_ocr_json
from .page_ocr import OCRActor, ocr_page
from .pdf_text import PdfTextLayer

__all__ = [
    "OCRSummary",
    "PageJob",
    "available_cores",
    "default_layout",
    "run_ocr",
    "run_ocr_jobs",
    "write_failure_list",
]

logger = logging.getLogger(__name__)

# Seconds one page may take (the densest PubLayNet pages take ~20 s on 2 cores).
PAGE_TIMEOUT = 300.0
# Cores per OCR engine process by default (see default_layout).
THREADS_PER_WORKER = 1
# Seconds a worker process may take to start and load its engine.
WORKER_START_TIMEOUT = 600.0
PR_SET_PDEATHSIG = 1  # linux/prctl.h


def write_failure_list(path, failed) -> None:
    """List ``(source, error)`` pairs in ``path``, one ``source<TAB>error`` line each; with
    none, remove ``path`` (a rerun that fixed everything leaves no stale list)."""
    path = Path(path)
    if failed:
        path.parent.mkdir(parents=True, exist_ok=True)
        lines = (f"{printable(source)}\t{printable(error)}\n" for source, error in failed)
        write_text_atomic(path, "".join(lines))
    else:
        path.unlink(missing_ok=True)


def available_cores() -> int:
    """Cores this process may run on (its affinity mask, e.g. under taskset or a CPU quota)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def default_layout(cores: int | None = None) -> tuple[int, int]:
    """(workers, onnxruntime threads per worker) of an OCR run by default: one engine per
    :data:`THREADS_PER_WORKER` cores. Measured on 2 cores (benchmarks/ocr_layouts.py): two
    1-thread engines beat one 2-thread engine by 21% (a worker starts in ~2 s; onnxruntime's
    intra-op threads parallelise PP-OCR's small convolutions poorly)."""
    cores = cores or available_cores()
    workers = max(1, cores // THREADS_PER_WORKER)
    return workers, max(1, cores // workers)


@dataclass
class OCRSummary:
    """``done``: pages OCR'd; ``text_layer``: PDF pages whose text came from the PDF;
    ``skipped``: pages whose valid JSON existed; ``failed``: ``(image, reason)`` of pages with
    no JSON (errors, time limit, degenerate); ``fallback``: ``(source, reason)`` of PDF pages
    OCR'd because their text layer was missing or unusable."""

    done: int = 0
    text_layer: int = 0
    skipped: int = 0
    failed: list = field(default_factory=list)
    fallback: list = field(default_factory=list)


class PageJob(NamedTuple):
    """One page to write text for: its image, its JSON path and, for a page rendered from a
    PDF, the PDF and the page's 0-based index (its text layer is read when usable)."""

    image: Path
    target: Path
    pdf: Path | None = None
    page_index: int = 0


_worker_engine = None


def _die_with(parent_pid: int) -> None:
    """Linux: this process is killed when ``parent_pid`` dies, so a killed OCR run leaves no
    worker behind writing pages (``prctl(PR_SET_PDEATHSIG, SIGKILL)``)."""
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent_pid:  # the parent died before the call
        os._exit(1)


def _init_worker(engine_name, options, ready=None, parent_pid=None):
    """Build this process's engine; a worker of a pool says on ``ready`` that it is ready, or
    why not (a pool would restart a worker whose initializer raised, forever)."""
    global _worker_engine
    if ready is None:
        _worker_engine = build_engine(engine_name, **options)
        return
    _die_with(parent_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    try:
        _worker_engine = build_engine(engine_name, **options)
        ready.put(None)
    except Exception as error:
        ready.put(f"{type(error).__name__}: {error}")


def _ocr_to_file(image_path: Path, out_path: Path):
    try:
        write_ocr_json(out_path, ocr_page(_worker_engine, image_path))
        return image_path, None
    except Exception as error:  # a bad page is reported and counted; the run goes on
        return image_path, f"{type(error).__name__}: {error}"


def run_ocr(images, image_root, out_root, engine="rapidocr", workers=None, **options) -> OCRSummary:
    """OCR ``images`` (paths under ``image_root``) into ``out_root/<relative path>.json``.

    Pages whose JSON exists and is valid are skipped; failures are logged, counted and listed in
    ``out_root/ocr_failed.txt``.
    """
    image_root, out_root = Path(image_root), Path(out_root)
    jobs = [
        (Path(image), out_root / Path(image).relative_to(image_root).with_suffix(".json"))
        for image in images
    ]
    return run_ocr_jobs(jobs, out_root / "ocr_failed.txt", engine, workers, **options)


def run_ocr_jobs(
    jobs,
    failed_list,
    engine="rapidocr",
    workers=None,
    page_timeout=PAGE_TIMEOUT,
    text_layer=True,
    ray_address=None,
    **options,
) -> OCRSummary:
    """Write the text of each page of ``jobs`` (:class:`PageJob`, or ``(image, JSON path)``
    pairs); see :func:`run_ocr`. The pages with no JSON are listed in ``failed_list`` (removed
    when there are none).

    Args:
        page_timeout: seconds a page may take; pages then run in worker processes, and one that
            runs past it is killed with its worker and listed as failed. None (or 0): no limit,
            and with one worker the pages run in this process.
        workers: engine processes (None: :func:`default_layout`); each gets ``threads``
            (default: the cores shared between them).
        text_layer: take a PDF page's text from its text layer when usable (False: OCR every
            page).
        ray_address: OCR on this Ray cluster (see :func:`.ray_pool.connect_ray`): ``workers``
            actors (default: as many as its CPUs hold) of ``threads`` CPUs each.
    """
    if ray_address:
        options.setdefault("threads", default_layout()[1])
    elif workers is None:
        workers, threads = default_layout()
        options.setdefault("threads", threads)
    else:  # share the cores between the workers' engines instead of oversubscribing
        options.setdefault("threads", max(1, available_cores() // workers))
    first_tokens = options.get("first_tokens", 0)
    if first_tokens and not getattr(engine_class(engine), "supports_first_tokens", False):
        raise ValueError(
            f"first-token OCR (first_tokens={first_tokens}) is only implemented "
            f"for rapidocr, not {engine_class(engine).name}"
        )
    summary = OCRSummary()
    pending, from_pdf = [], []
    for job in (PageJob(*job) for job in jobs):
        if is_valid_ocr_json(job.target, first_tokens):
            summary.skipped += 1
        elif job.pdf is not None and text_layer:
            from_pdf.append(job)
        elif problem := degenerate_page(job.image):
            summary.failed.append((str(job.image), problem))
            logger.warning("skipped %s before OCR: %s", job.image, problem)
        else:
            pending.append((Path(job.image), Path(job.target)))
    try:
        if from_pdf:
            pending += _read_text_layers(from_pdf, summary)
        logger.info("%d pages to OCR, %d already done", len(pending), summary.skipped)
        _ocr_pending(pending, summary, engine, options, workers, page_timeout, ray_address)
    except KeyboardInterrupt:
        raise RunInterrupted(summary.done + summary.text_layer) from None
    if summary.failed:
        logger.warning(
            "%d pages have no text JSON (listed in %s)", len(summary.failed), failed_list
        )
    write_failure_list(failed_list, summary.failed)
    return summary


def _ocr_pending(pending, summary, engine, options, workers, page_timeout, ray_address) -> None:
    """OCR ``pending`` ``(image, JSON path)`` pairs into ``summary``."""
    if not pending:
        return
    # an unknown name fails here; an engine that cannot load, in the first worker to try
    label = engine_class(engine).name
    start = time.perf_counter()
    with tqdm(total=len(pending), unit="page", desc=f"OCR ({label})") as progress:
        if ray_address:
            _run_on_ray(
                pending, summary, progress, engine, options, workers, page_timeout, ray_address
            )
        elif page_timeout or workers > 1:
            _run_in_workers(pending, summary, progress, engine, options, workers, page_timeout)
        else:
            _init_worker(engine, options)
            for image, target in pending:
                _record(_ocr_to_file(image, target), summary, progress)
    elapsed = time.perf_counter() - start
    logger.info(
        "OCR: %d pages in %.1f s (%.2f pages/s)",
        len(pending),
        elapsed,
        len(pending) / max(elapsed, 1e-9),
    )


def _read_text_layers(jobs, summary: OCRSummary) -> list:
    """Write the JSON of the PDF pages of ``jobs`` from their text layers; returns the
    ``(image, JSON path)`` of those that need OCR (no or unusable text layer), recorded in
    ``summary.fallback``."""
    needs_ocr, layer = [], None
    try:
        for job in tqdm(jobs, unit="page", desc="PDF text layer"):
            source = f"{job.pdf}#page={job.page_index + 1}"
            try:
                if layer is None or layer.path != Path(job.pdf):
                    if layer is not None:
                        layer.close()
                        layer = None  # not closed twice if the next PDF fails to open
                    layer = PdfTextLayer(job.pdf)
                with Image.open(job.image) as image:
                    width, height = image.size
                result = layer.read(job.page_index, width, height)
            except Exception as error:  # a bad page or PDF costs that page, not the run
                message = error_line(error)
                summary.failed.append((source, message))
                logger.error("no text for %s: %s", source, error)
                continue
            if result.page is None:
                summary.fallback.append((source, result.reason))
                logger.info("%s: %s; OCR instead", source, result.reason)
                needs_ocr.append((Path(job.image), Path(job.target)))
            else:
                write_ocr_json(Path(job.target), result.page)
                summary.text_layer += 1
    finally:
        if layer is not None:
            layer.close()
    if summary.fallback:
        logger.warning(
            "%d of %d PDF pages have no usable text layer and are OCR'd",
            len(summary.fallback),
            len(jobs),
        )
    return needs_ocr


def _run_on_ray(pending, summary, progress, engine, options, workers, page_timeout, address):
    """OCR ``pending`` on a Ray cluster; JSON written here, as each page's result arrives."""
    from .ray_pool import ActorStartError, run_on_ray

    def written(job, page):
        write_ocr_json(job[1], page)
        _record((job[0], None), summary, progress)

    def failed(job, error):
        _record((job[0], error), summary, progress)

    try:
        run_on_ray(
            address,
            OCRActor,
            (engine, options),
            "ocr",
            pending,
            lambda job: (job[0].read_bytes(),),
            written,
            failed,
            workers=workers,
            cpus=options["threads"],
            item_timeout=page_timeout,
        )
    except ActorStartError as error:
        raise EngineUnavailable(f"an OCR worker could not start on Ray: {error.reason}") from None


def _run_in_workers(pending, summary, progress, engine, options, workers, page_timeout):
    """OCR ``pending`` in ``workers`` spawned processes (not forked: a fork copies the parent's
    engine threads' locks mid-use), one page per worker at a time, so a page's clock starts when
    it is handed out. A page past ``page_timeout`` ends the pool (killing its worker); it is
    listed as failed and the pages still running are handed to a fresh pool."""
    context = multiprocessing.get_context("spawn")
    todo = deque(pending)
    workers = max(1, min(workers, len(todo)))
    while todo:
        ready = context.Queue()
        with context.Pool(workers, _init_worker, (engine, options, ready, os.getpid())) as pool:
            for _ in range(workers):  # the clocks start once every engine is loaded
                try:
                    error = ready.get(timeout=WORKER_START_TIMEOUT)
                except queue.Empty:
                    error = f"no engine loaded within {WORKER_START_TIMEOUT:g} s"
                if error:
                    raise EngineUnavailable(f"an OCR worker process could not start: {error}")
            running = {}
            while todo or running:
                while todo and len(running) < workers:
                    image, target = todo.popleft()
                    result = pool.apply_async(_ocr_to_file, (image, target))
                    running[result] = (image, target, time.monotonic())
                for result in [r for r in running if r.ready()]:
                    running.pop(result)
                    _record(result.get(), summary, progress)
                late = [
                    job
                    for job in running.values()
                    if page_timeout and time.monotonic() - job[2] > page_timeout
                ]
                if late:
                    for image, _, _ in late:
                        _record(
                            (
                                image,
                                f"OCR ran past the {page_timeout:g} s page time "
                                "limit; its worker was stopped",
                            ),
                            summary,
                            progress,
                        )
                    unfinished = [
                        (image, target)
                        for image, target, started in running.values()
                        if (image, target, started) not in late
                    ]
                    todo.extendleft(reversed(unfinished))
                    break  # leaving the with-block terminates the pool and its stuck worker
                if running:
                    next(iter(running)).wait(0.05)


def _record(outcome, summary: OCRSummary, progress) -> None:
    image, error = outcome
    if error:
        summary.failed.append((str(image), error))
        logger.error("OCR failed for %s: %s", image, error)
    else:
        summary.done += 1
    progress.update()
