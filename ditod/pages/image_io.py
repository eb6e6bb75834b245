"""Page image files: which files are pages, and reading them the way the detector sees them.

Memory follows what the caller needs, not the file: a reader that needs only a smaller page
(the detector looks at <= 1333 px, an overlay at <= 2000 px) gets it decoded at reduced size where
the format allows (JPEG's DCT scaling through ``Image.draft``), then reduced by an integer
factor (``Image.reduce``), one scaled copy kept. Pages over :func:`max_page_pixels` (Pillow's
decompression-bomb limit by default) are refused with a message that names the file, its size
and how to raise the limit.
"""

import contextlib
import math
import os
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

__all__ = [
    "IMAGE_SUFFIXES",
    "MAX_PAGE_MEGAPIXELS_ENV",
    "PageTooLarge",
    "degenerate_page",
    "find_images",
    "max_page_pixels",
    "open_page",
    "page_size",
    "read_page_image",
    "set_max_page_megapixels",
]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp")

# A page image smaller than this on its shorter side, or longer than this ratio, is no page: OCR
# of a 600×1 strip ran for minutes and found nothing.
MIN_PAGE_SIDE = 32
MAX_PAGE_ASPECT = 20.0
# The largest page read, in megapixels; set by --max-megapixels, inherited by worker processes.
MAX_PAGE_MEGAPIXELS_ENV = "DITOD_MAX_PAGE_MEGAPIXELS"
_EXIF_ORIENTATION = 0x0112
_ORIENT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


class PageTooLarge(ValueError):
    """A page image over :func:`max_page_pixels`."""


def max_page_pixels() -> int:
    """The largest page (width × height) read: ``DITOD_MAX_PAGE_MEGAPIXELS`` megapixels, else
    Pillow's decompression-bomb error limit (2 × ``Image.MAX_IMAGE_PIXELS``, ~179 MP)."""
    value = os.environ.get(MAX_PAGE_MEGAPIXELS_ENV)
    if value:
        try:
            return int(float(value) * 1e6)
        except ValueError:
            raise ValueError(
                f"{MAX_PAGE_MEGAPIXELS_ENV}={value!r} is not a number of megapixels"
            ) from None
    return 2 * (Image.MAX_IMAGE_PIXELS or 89_478_485)


def set_max_page_megapixels(megapixels: float) -> None:
    """Raise (or lower) the page size limit for this process and the workers it starts."""
    if not megapixels > 0:
        raise ValueError(f"the page size limit must be positive, got {megapixels} megapixels")
    os.environ[MAX_PAGE_MEGAPIXELS_ENV] = f"{megapixels:g}"


def find_images(folder) -> list[Path]:
    """Page images under ``folder``, recursively, sorted."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: image folder not found")
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)


@contextlib.contextmanager
def open_page(path) -> Iterator[Image.Image]:
    """``Image.open(path)`` (the header only) with the page size limit of this project in place
    of Pillow's: :class:`PageTooLarge` names the file, its size and how to raise the limit; a
    missing or unreadable file raises ``FileNotFoundError``/``ValueError`` naming it."""
    limit = max_page_pixels()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            pillow_limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
            try:
                image = Image.open(path)
            finally:
                Image.MAX_IMAGE_PIXELS = pillow_limit
    except FileNotFoundError as error:
        raise FileNotFoundError(f"{path}: image file not found") from error
    except (UnidentifiedImageError, OSError, SyntaxError) as error:
        raise ValueError(f"{path}: cannot read image ({error})") from error
    with image:
        width, height = image.size
        if width * height > limit:
            raise PageTooLarge(
                f"{path}: page is {width}x{height} px, {width * height / 1e6:.0f} megapixels, "
                f"over the limit of {limit / 1e6:.0f} megapixels (a guard against decompression "
                f"bombs); for pages this large, raise it with --max-megapixels or "
                f"{MAX_PAGE_MEGAPIXELS_ENV}"
            )
        yield image


def _orientation(image: Image.Image) -> int:
    """The EXIF orientation of an opened image (1: as stored), read without decoding pixels
    (Pillow's PNG ``getexif`` decodes the whole image to look past it)."""
    if image.format == "PNG" and "exif" not in image.info:
        return 1
    return image.getexif().get(_EXIF_ORIENTATION, 1)


def _upright_size(image: Image.Image) -> tuple[int, int]:
    width, height = image.size
    turned = _orientation(image) in (5, 6, 7, 8)
    return (height, width) if turned else (width, height)


def page_size(path) -> tuple[int, int]:
    """(width, height) of the upright page (EXIF orientation applied), from the header."""
    with open_page(path) as image:
        return _upright_size(image)


def degenerate_page(path) -> str | None:
    """Why the image at ``path`` is not a page (too small, extreme aspect ratio, over the size
    limit), or None; reads only the header. An unreadable file is None here: reading it reports
    that."""
    try:
        width, height = page_size(path)
    except PageTooLarge as error:
        return str(error).removeprefix(f"{path}: ")
    except (OSError, ValueError):
        return None
    short, long = min(width, height), max(width, height)
    if short < MIN_PAGE_SIDE:
        return f"degenerate page {width}x{height} px (shorter side under {MIN_PAGE_SIDE} px)"
    if long / short > MAX_PAGE_ASPECT:
        return f"degenerate page {width}x{height} px (aspect ratio over {MAX_PAGE_ASPECT:g}:1)"
    return None


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        values = np.asarray(image, dtype=np.float64)
        full_scale = 65535.0 if values.max(initial=0) > 255 else 255.0
        gray = np.clip(np.round(values / full_scale * 255), 0, 255).astype(np.uint8)
        return Image.fromarray(gray, mode="L").convert("RGB")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        paper = Image.new("RGBA", image.size, (255, 255, 255, 255))
        return Image.alpha_composite(paper, image.convert("RGBA")).convert("RGB")
    return image.convert("RGB")


def _reduce(image: Image.Image, factor: int) -> Image.Image:
    try:
        return image.reduce(factor)
    except ValueError:  # a mode reduce() does not take (e.g. palette, 16-bit): RGB first
        return _to_rgb(image).reduce(factor)


def read_page_image(path, format: str = "RGB", *, min_side=None, max_side=None) -> np.ndarray:
    """A page as an (H, W, 3) uint8 array in ``format`` ("RGB" or "BGR").

    EXIF orientation is applied (W and H are those of the upright page); grayscale, palette,
    16-bit, CMYK and transparent images are converted (transparency onto white paper). A missing,
    truncated or unreadable file raises ``OSError``/``ValueError`` naming it; a page over the size
    limit :class:`PageTooLarge`.

    Args:
        min_side: the caller needs no more than this on the shorter side: the page may come back
            reduced by an integer factor, its shorter side still >= ``min_side`` (full size:
            :func:`page_size`).
        max_side: the page comes back with its longer side at most ``max_side`` (a display copy).
    """
    if format not in ("RGB", "BGR"):
        raise ValueError(f"image format must be RGB or BGR, got {format}")
    with open_page(path) as image:
        width, height = image.size
        wanted = (min(width, height) / min_side) if min_side else 1.0
        if max_side:
            wanted = max(wanted, max(width, height) / max_side)
        try:
            orientation = _orientation(image)
            if int(wanted) >= 2 and image.format == "JPEG":  # decode at 1/2, 1/4 or 1/8 size
                image.draft(None, (math.ceil(width / wanted), math.ceil(height / wanted)))
            image.load()
            factor = int(min(image.size) / min_side) if min_side else 1
            if max_side:
                factor = max(factor, int(max(image.size) / max_side))
            if factor >= 2:
                image = _reduce(image, factor)
            if max_side and max(image.size) > max_side:
                scale = max_side / max(image.size)
                size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
                image = _to_rgb(image).resize(size, Image.Resampling.BILINEAR)
            if orientation in _ORIENT:
                image = image.transpose(_ORIENT[orientation])
            array = np.asarray(_to_rgb(image))
        except (OSError, SyntaxError) as error:
            raise ValueError(f"{path}: cannot read image ({error})") from error
    return array[:, :, ::-1].copy() if format == "BGR" else array
