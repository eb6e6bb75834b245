"""The pages of an inference run: image files, folders of them, and PDFs rendered page by page."""

import logging
import math
from dataclasses import dataclass
from pathlib import Path

from ..file_io import atomic_path, printable
from .image_io import IMAGE_SUFFIXES, degenerate_page, open_page, page_size
from .pdf_text import pdf_problem

__all__ = ["PageInput", "collect_pages", "render_pdf", "split_tiff", "tiff_frames"]

logger = logging.getLogger(__name__)


@dataclass
class PageInput:
    """One page to detect on.

    Attributes:
        name: output name, a relative POSIX path without suffix: an image's stem (or its path
            under a given folder), ``<pdf stem>/page-0001`` for PDF pages. Outputs and OCR JSON
            of the page are ``<folder>/<name>.<suffix>``.
        image: the page image (for a PDF page, the rendered PNG).
        source: what the user gave for it (``file.pdf#page=3`` for PDF pages).
        pdf: for a PDF page, the PDF (its text layer can stand in for OCR).
        page_index: for a PDF page, its 0-based index in ``pdf``.
    """

    name: str
    image: Path
    source: str
    pdf: Path | None = None
    page_index: int = 0


def _image_size(path: Path):
    try:
        return page_size(path)
    except (OSError, ValueError):
        return None


def render_pdf(pdf: Path, out_dir: Path, dpi: float) -> list[Path]:
    """Render every page of ``pdf`` at ``dpi`` to ``out_dir/page-0001.png`` … (written to a
    temporary file, then renamed; a page whose PNG of that size exists is kept). Raises
    ``ValueError`` naming the file and the reason (not a PDF, encrypted, no pages, damaged) if it
    yields no page."""
    import pypdfium2

    try:
        document = pypdfium2.PdfDocument(str(pdf))
    except pypdfium2.PdfiumError:
        raise ValueError(f"{pdf}: {pdf_problem(pdf)}") from None
    if len(document) == 0:
        document.close()
        raise ValueError(f"{pdf}: the PDF has no pages")
    out_dir.mkdir(parents=True, exist_ok=True)
    paths, scale = [], dpi / 72
    try:
        for index in range(len(document)):
            path = out_dir / f"page-{index + 1:04d}.png"
            paths.append(path)
            page = document[index]
            size = (math.ceil(page.get_width() * scale), math.ceil(page.get_height() * scale))
            if _image_size(path) == size:  # rendered by an earlier run at this dpi
                page.close()
                continue
            image = page.render(scale=scale).to_pil().convert("RGB")
            page.close()
            with atomic_path(path) as tmp:
                image.save(tmp, format="PNG")
    finally:
        document.close()
    return paths


def tiff_frames(path: Path) -> int:
    """Frames (pages) of a TIFF file; 1 for any other image or an unreadable file."""
    if path.suffix.lower() not in (".tif", ".tiff"):
        return 1
    try:
        with open_page(path) as image:
            return getattr(image, "n_frames", 1)
    except (OSError, ValueError):
        return 1


def split_tiff(tiff: Path, out_dir: Path) -> list[Path]:
    """Write every frame of a multi-page TIFF (a scanner's document) to ``out_dir/page-0001.png``
    … (atomically; frames written by an earlier run are kept). Raises ``ValueError`` naming the
    file and the frame that cannot be read."""
    paths = []
    with open_page(tiff) as image:
        for index in range(getattr(image, "n_frames", 1)):
            path = out_dir / f"page-{index + 1:04d}.png"
            paths.append(path)
            if path.is_file():
                continue
            try:
                image.seek(index)
                frame = image.copy()
            except (OSError, EOFError, SyntaxError) as error:
                raise ValueError(f"{tiff}: cannot read page {index + 1} ({error})") from error
            with atomic_path(path) as tmp:
                frame.save(tmp, format="PNG")
    return paths


def _unique(name: str, used: set) -> str:
    candidate, k = name, 2
    while candidate in used:
        candidate, k = f"{name}-{k}", k + 1
    used.add(candidate)
    return candidate


def collect_pages(inputs, render_dir, dpi: float = 150) -> tuple[list[PageInput], list]:
    """Pages of ``inputs`` (image files, PDFs, folders searched recursively for both), in the
    order given (folders sorted). PDFs are rendered into ``render_dir``, and each frame of a
    multi-page TIFF is written there as a page of its own.

    Returns:
        pages, and ``(source, error message)`` of every input that yields no page (missing
        path, unsupported file, unreadable PDF, degenerate image).
    """
    render_dir = Path(render_dir)
    pages, failures, used = [], [], set()
    for given in map(Path, inputs):
        if given.is_dir():
            files = sorted(
                p for p in given.rglob("*") if p.suffix.lower() in (*IMAGE_SUFFIXES, ".pdf")
            )
            named = [(f, f.relative_to(given).with_suffix("").as_posix()) for f in files]
            if not files:
                failures.append((printable(given), "folder holds no images or PDFs"))
        elif given.is_file():
            named = [(given, given.stem)]
        else:
            failures.append((printable(given), "no such file or folder"))
            continue
        for path, name in named:
            suffix = path.suffix.lower()
            multi_page = suffix == ".pdf" or (suffix in (".tif", ".tiff") and tiff_frames(path) > 1)
            if multi_page:  # each page written into render_dir as an image of its own
                name = _unique(name, used)
                try:
                    if suffix == ".pdf":
                        images = render_pdf(path, render_dir / name, dpi)
                    else:
                        images = split_tiff(path, render_dir / name)
                except ValueError as error:
                    failures.append((printable(path), printable(error)))
                    continue
                pdf = path if suffix == ".pdf" else None
                for index, image in enumerate(images):
                    source = f"{printable(path)}#page={index + 1}"
                    pages.append(PageInput(f"{name}/{image.stem}", image, source, pdf, index))
            elif suffix in IMAGE_SUFFIXES:
                if problem := degenerate_page(path):
                    failures.append((printable(path), printable(problem)))
                    continue
                pages.append(PageInput(_unique(name, used), path, printable(path)))
            else:
                failures.append(
                    (printable(path), f"unsupported file type '{printable(path.suffix)}'")
                )
    for source, error in failures:
        logger.error("skipped %s: %s", source, error)
    return pages, failures
