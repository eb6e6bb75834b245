"""OCR preprocessing: one JSON per page image, ``{"bbox": [[x, y, w, h], ...], "words": [...],
"W": width, "H": height}`` plus ``scores``, ``polys`` and an ``engine`` record (DESIGN §3, §6).

Pages rendered from a PDF take their text from the PDF's text layer when it has a usable one
(:mod:`.pdf_text`, ~100× faster than OCR); the others are OCR'd.

Engines sit behind one small interface (an image in, text lines out): ``rapidocr`` (default; its
models ship in the wheel), ``paddleocr`` (2.x ``ocr`` and 3.x ``predict`` APIs) and ``tesseract``.
Runs are resumable (pages whose JSON exists and is valid are skipped), parallel (one engine per
worker process), atomic (a JSON is written to a temporary file, then renamed) and bounded: a
degenerate page (too small, extreme aspect ratio) is skipped before OCR, and a page that runs past
the per-page time limit has its worker killed and is listed as failed.
"""

import ctypes
import importlib.metadata
import io
import json
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
from types import SimpleNamespace
from typing import NamedTuple

import numpy as np
from PIL import Image
from tqdm import tqdm

from .first_tokens import first_words, prefix_widths
from .image_io import degenerate_page, read_page_image
from .pdf_text import PdfTextLayer

__all__ = [
    "ENGINES",
    "EngineUnavailable",
    "OCRActor",
    "OCRSummary",
    "PageJob",
    "available_cores",
    "build_engine",
    "default_layout",
    "find_images",
    "is_valid_ocr_json",
    "ocr_page",
    "run_ocr",
    "run_ocr_jobs",
    "write_failure_list",
]

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp")
# Seconds one page may take (the densest PubLayNet pages take ~20 s on 2 cores).
PAGE_TIMEOUT = 300.0
# Cores per OCR engine process by default (see default_layout).
THREADS_PER_WORKER = 1
# Seconds a worker process may take to start and load its engine.
WORKER_START_TIMEOUT = 600.0
PR_SET_PDEATHSIG = 1  # linux/prctl.h
# Narrowest recogniser input (pixels at its 48-pixel height) in first-token mode, for line
# starts and for lines recognised whole (measured on PubLayNet: benchmarks/ocr_first_tokens.py).
PREFIX_MIN_WIDTH = 64
LINE_MIN_WIDTH = 192
_NO_TEXT = SimpleNamespace(txts=(), scores=())


class EngineUnavailable(RuntimeError):
    """An OCR engine is not installed or cannot load its models offline."""


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _line(poly, text, score):
    poly = np.asarray(poly, dtype=np.float64).reshape(-1, 2)
    x0, y0 = poly.min(0)
    x1, y1 = poly.max(0)
    box = [round(float(x0), 1), round(float(y0), 1), round(float(x1 - x0), 1),
           round(float(y1 - y0), 1)]  # fmt: skip
    return box, str(text), float(score), poly.round(1).tolist()


class RapidOCREngine:
    """RapidOCR (PP-OCR models in ONNX, shipped in the wheel; offline).

    Args:
        first_tokens: k > 0 recognises only the start of each line, enough for its first k
            tokens (see :mod:`.first_tokens`); its lines' text is then their first k words.
        threads: onnxruntime intra-op threads of each model (-1: onnxruntime's default).
    """

    name = "rapidocr"
    supports_first_tokens = True

    def __init__(self, use_angle_cls: bool = True, threads: int = -1, first_tokens: int = 0, **_):
        try:
            from rapidocr import RapidOCR
        except ImportError as error:
            raise EngineUnavailable(
                "rapidocr is not installed: pip install 'layoutlmv3-ditod[ocr]' "
                "(rapidocr + onnxruntime)"
            ) from error
        if first_tokens < 0:
            raise ValueError(f"first_tokens must be >= 0 (0: whole lines), got {first_tokens}")
        logging.getLogger("RapidOCR").setLevel(logging.WARNING)
        params = {"EngineConfig.onnxruntime.intra_op_num_threads": threads} if threads > 0 else None
        self.engine = RapidOCR(params=params)
        self.use_angle_cls = use_angle_cls
        self.first_tokens = first_tokens
        self.version = _version("rapidocr")

    def __call__(self, image: np.ndarray) -> list:
        if self.first_tokens:
            return self._line_starts(image)
        result = self.engine(image, use_cls=self.use_angle_cls)
        if result.boxes is None or result.txts is None:
            return []
        return [_line(p, t, s) for p, t, s in zip(result.boxes, result.txts, result.scores)]

    def _line_starts(self, image: np.ndarray) -> list:
        """RapidOCR's detection, angle classification and recognition steps, with each line
        recognised only up to a little past its (k+1)-th word (see :mod:`.first_tokens`)."""
        from rapidocr.main import RapidOCRError
        from rapidocr.utils.process_img import map_boxes_to_original

        ocr, k = self.engine, self.first_tokens
        resized, record = ocr.preprocess_img(image)
        try:
            crops, detected = ocr.detect_and_crop(resized, record)
            if self.use_angle_cls:
                crops, _ = ocr.cls_and_rotate(crops)
        except RapidOCRError:
            return []
        texts, scores = [None] * len(crops), [0.0] * len(crops)
        widths = [prefix_widths(crop, k) for crop in crops]
        for attempt in range(max(map(len, widths), default=0)):
            lines = [i for i, text in enumerate(texts) if text is None and attempt < len(widths[i])]
            starts = self._recognize([crops[i][:, : widths[i][attempt]] for i in lines],
                                     PREFIX_MIN_WIDTH)  # fmt: skip
            for i, text, score in zip(lines, starts.txts, starts.scores):
                texts[i], scores[i] = first_words(text, k), score
        whole = [i for i, text in enumerate(texts) if text is None]
        if whole:
            lines = self._recognize([crops[i] for i in whole], LINE_MIN_WIDTH)
            for i, text, score in zip(whole, lines.txts, lines.scores):
                texts[i], scores[i] = text, score
        boxes = map_boxes_to_original(detected.boxes, record, *image.shape[:2])
        return [_line(box, text, score) for box, text, score in zip(boxes, texts, scores)
                if text.strip() and score >= ocr.text_score]  # fmt: skip

    def _recognize(self, crops: list, min_width: int):
        """Recognise ``crops`` padded to at least ``min_width`` pixels at the recogniser's
        height (RapidOCR pads every crop to 320: most of the cost of a short crop)."""
        recognizer = self.engine._load_rec_model()
        shape = recognizer.rec_image_shape
        recognizer.rec_image_shape = [*shape[:2], min_width]
        try:
            return self.engine.recognize_txt(crops) if crops else _NO_TEXT
        finally:
            recognizer.rec_image_shape = shape


class PaddleOCREngine:
    """PaddleOCR 2.x (``ocr(image, cls=...)``) or 3.x (``predict``); model dirs passable."""

    name = "paddleocr"

    def __init__(self, use_angle_cls=True, lang="ch", det_model_dir=None, rec_model_dir=None,
                 cls_model_dir=None, **_):  # fmt: skip
        try:
            import paddleocr
        except ImportError as error:
            raise EngineUnavailable(
                "paddleocr is not installed: pip install 'layoutlmv3-ditod[paddle]', and pass "
                "--det-model-dir/--rec-model-dir to run offline"
            ) from error
        self.version = _version("paddleocr")
        self.major = int(self.version.split(".")[0]) if self.version[0].isdigit() else 2
        self.use_angle_cls = use_angle_cls
        try:
            if self.major >= 3:
                self.engine = paddleocr.PaddleOCR(
                    use_textline_orientation=use_angle_cls, lang=lang,
                    text_detection_model_dir=det_model_dir,
                    text_recognition_model_dir=rec_model_dir,
                )  # fmt: skip
            else:
                self.engine = paddleocr.PaddleOCR(
                    use_angle_cls=use_angle_cls, lang=lang, det_model_dir=det_model_dir,
                    rec_model_dir=rec_model_dir, cls_model_dir=cls_model_dir, show_log=False,
                )  # fmt: skip
        except Exception as error:
            raise EngineUnavailable(
                f"paddleocr {self.version} could not load its models ({error}); offline, pass "
                "local --det-model-dir and --rec-model-dir (and --cls-model-dir)"
            ) from error

    def __call__(self, image: np.ndarray) -> list:
        bgr = np.ascontiguousarray(image[:, :, ::-1])
        if self.major >= 3:
            lines = []
            for page in self.engine.predict(bgr):
                found = zip(page["rec_polys"], page["rec_texts"], page["rec_scores"])
                lines += [_line(poly, text, score) for poly, text, score in found]
            return lines
        result = self.engine.ocr(bgr, cls=self.use_angle_cls)
        page = (result or [None])[0] or []
        return [_line(poly, text, score) for poly, (text, score) in page]


class TesseractEngine:
    """Tesseract through pytesseract; words grouped into lines."""

    name = "tesseract"

    def __init__(self, lang="eng", **_):
        try:
            import pytesseract

            self.version = str(pytesseract.get_tesseract_version())
        except ImportError as error:
            raise EngineUnavailable(
                "pytesseract is not installed: pip install 'layoutlmv3-ditod[tesseract]'"
            ) from error
        except Exception as error:
            raise EngineUnavailable(
                "the tesseract program is not installed: apt-get install tesseract-ocr "
                "(tesseract-ocr-chi-sim for Chinese)"
            ) from error
        self.pytesseract, self.lang = pytesseract, lang

    def __call__(self, image: np.ndarray) -> list:
        data = self.pytesseract.image_to_data(
            image, lang=self.lang, output_type=self.pytesseract.Output.DICT
        )
        lines = {}
        for i, text in enumerate(data["text"]):
            if not text.strip() or float(data["conf"][i]) < 0:
                continue
            key = (data["block_num"][i], data["par_num"][i], data["line_num"][i])
            x, y, w, h = (data[k][i] for k in ("left", "top", "width", "height"))
            lines.setdefault(key, []).append((x, y, x + w, y + h, text, float(data["conf"][i])))
        result = []
        for words in lines.values():
            x0, y0 = min(w[0] for w in words), min(w[1] for w in words)
            x1, y1 = max(w[2] for w in words), max(w[3] for w in words)
            poly = [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]
            text = " ".join(w[4] for w in words)
            result.append(_line(poly, text, np.mean([w[5] for w in words]) / 100))
        return result


ENGINES = {e.name: e for e in (RapidOCREngine, PaddleOCREngine, TesseractEngine)}


def _engine_class(engine):
    if not isinstance(engine, str):
        return engine
    if engine not in ENGINES:
        raise ValueError(f"OCR engine '{engine}' is not one of {sorted(ENGINES)}")
    return ENGINES[engine]


def build_engine(engine, **options):
    """An engine by name (one of :data:`ENGINES`) or from its class: any importable class whose
    instances have ``name`` and ``version`` and map an RGB array (H, W, 3) to ``[(box, text,
    score, polygon), ...]``. :class:`EngineUnavailable` says what to install or pass."""
    return _engine_class(engine)(**options)


def ocr_page(engine, image_path) -> dict:
    """OCR one page image into the JSON dict; W and H are the upright (EXIF-applied) size."""
    image = read_page_image(image_path, format="RGB")
    lines = engine(image)
    return {
        "bbox": [box for box, _, _, _ in lines],
        "words": [text for _, text, _, _ in lines],
        "W": int(image.shape[1]),
        "H": int(image.shape[0]),
        "scores": [round(score, 4) for _, _, score, _ in lines],
        "polys": [poly for _, _, _, poly in lines],
        "engine": engine_record(engine),
    }


def engine_record(engine) -> dict:
    """The ``engine`` entry of an OCR JSON: name, version and, for first-token OCR, ``k``
    (each line holds only its first k words: readers keeping more tokens must refuse it)."""
    record = {"name": engine.name, "version": engine.version}
    if getattr(engine, "first_tokens", 0):
        record["first_tokens"] = engine.first_tokens
    return record


def is_valid_ocr_json(path, first_tokens: int = 0) -> bool:
    """A finished OCR JSON: parses, has the keys, equal-length ``words`` and ``bbox``, and holds
    every token of its lines (``first_tokens`` k > 0: at least their first k)."""
    try:
        page = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    engine = page.get("engine") if isinstance(page, dict) else None
    read = engine.get("first_tokens", 0) if isinstance(engine, dict) else 0
    if read and (not first_tokens or read < first_tokens):
        return False
    return (
        isinstance(page, dict)
        and isinstance(page.get("words"), list)
        and isinstance(page.get("bbox"), list)
        and len(page["words"]) == len(page["bbox"])
        and isinstance(page.get("W"), int | float)
        and isinstance(page.get("H"), int | float)
    )


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file renamed over it: a reader never sees
    a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_json_atomic(path: Path, data) -> None:
    write_text_atomic(path, json.dumps(data, ensure_ascii=False))


def write_failure_list(path, failed) -> None:
    """List ``(source, error)`` pairs in ``path``, one ``source<TAB>error`` line each; with
    none, remove ``path`` (a rerun that fixed everything leaves no stale list)."""
    path = Path(path)
    if failed:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(f"{source}\t{error}\n" for source, error in failed), "utf-8")
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


def find_images(folder) -> list[Path]:
    """Page images under ``folder``, recursively, sorted."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: image folder not found")
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)


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
    try:
        _worker_engine = build_engine(engine_name, **options)
        ready.put(None)
    except Exception as error:
        ready.put(f"{type(error).__name__}: {error}")


def _ocr_to_file(image_path: Path, out_path: Path):
    try:
        write_json_atomic(out_path, ocr_page(_worker_engine, image_path))
        return image_path, None
    except Exception as error:  # a bad page is reported and counted; the run goes on
        return image_path, f"{type(error).__name__}: {error}"


def run_ocr(images, image_root, out_root, engine="rapidocr", workers=None,
            **options) -> OCRSummary:  # fmt: skip
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


def run_ocr_jobs(jobs, failed_list, engine="rapidocr", workers=None, page_timeout=PAGE_TIMEOUT,
                 text_layer=True, ray_address=None, **options) -> OCRSummary:  # fmt: skip
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
    if first_tokens and not getattr(_engine_class(engine), "supports_first_tokens", False):
        raise ValueError(f"first-token OCR (first_tokens={first_tokens}) is only implemented "
                         f"for rapidocr, not {_engine_class(engine).name}")  # fmt: skip
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
    if from_pdf:
        pending += _read_text_layers(from_pdf, summary)
    logger.info("%d pages to OCR, %d already done", len(pending), summary.skipped)
    if pending:
        # an unknown name fails here; an engine that cannot load, in the first worker to try
        label = _engine_class(engine).name
        start = time.perf_counter()
        progress = tqdm(total=len(pending), unit="page", desc=f"OCR ({label})")
        if ray_address:
            _run_on_ray(pending, summary, progress, engine, options, workers, page_timeout,
                        ray_address)  # fmt: skip
        elif page_timeout or workers > 1:
            _run_in_workers(pending, summary, progress, engine, options, workers, page_timeout)
        else:
            _init_worker(engine, options)
            for image, target in pending:
                _record(_ocr_to_file(image, target), summary, progress)
        progress.close()
        elapsed = time.perf_counter() - start
        logger.info("OCR: %d pages in %.1f s (%.2f pages/s)", len(pending), elapsed,
                    len(pending) / max(elapsed, 1e-9))  # fmt: skip
    if summary.failed:
        logger.warning("%d pages have no text JSON (listed in %s)", len(summary.failed),
                       failed_list)  # fmt: skip
    write_failure_list(failed_list, summary.failed)
    return summary


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
            except (OSError, ValueError) as error:
                summary.failed.append((source, str(error)))
                logger.error("no text for %s: %s", source, error)
                continue
            if result.page is None:
                summary.fallback.append((source, result.reason))
                logger.info("%s: %s; OCR instead", source, result.reason)
                needs_ocr.append((Path(job.image), Path(job.target)))
            else:
                write_json_atomic(Path(job.target), result.page)
                summary.text_layer += 1
    finally:
        if layer is not None:
            layer.close()
    if summary.fallback:
        logger.warning("%d of %d PDF pages have no usable text layer and are OCR'd",
                       len(summary.fallback), len(jobs))  # fmt: skip
    return needs_ocr


class OCRActor:
    """One engine on a Ray worker: page image bytes in, the page's OCR JSON dict out."""

    def __init__(self, engine, options):
        self.engine = build_engine(engine, **options)

    def ocr(self, data: bytes) -> dict:
        return ocr_page(self.engine, io.BytesIO(data))


def _run_on_ray(pending, summary, progress, engine, options, workers, page_timeout, address):
    """OCR ``pending`` on a Ray cluster; JSON written here, as each page's result arrives."""
    from .ray_pool import ActorStartError, run_on_ray

    def written(job, page):
        write_json_atomic(job[1], page)
        _record((job[0], None), summary, progress)

    def failed(job, error):
        _record((job[0], error), summary, progress)

    try:
        run_on_ray(address, OCRActor, (engine, options), "ocr", pending,
                   lambda job: (job[0].read_bytes(),), written, failed, workers=workers,
                   cpus=options["threads"], item_timeout=page_timeout)  # fmt: skip
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
                late = [job for job in running.values()
                        if page_timeout and time.monotonic() - job[2] > page_timeout]  # fmt: skip
                if late:
                    for image, _, _ in late:
                        _record((image, f"OCR ran past the {page_timeout:g} s page time "
                                 "limit; its worker was stopped"), summary, progress)  # fmt: skip
                    unfinished = [(image, target) for image, target, started in running.values()
                                  if (image, target, started) not in late]  # fmt: skip
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
