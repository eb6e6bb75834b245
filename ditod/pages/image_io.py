"""Page image files: which files are pages, and reading them the way the detector sees them."""

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

__all__ = ["IMAGE_SUFFIXES", "degenerate_page", "find_images", "read_page_image"]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp")

# A page image smaller than this on its shorter side, or longer than this ratio, is no page: OCR
# of a 600×1 strip ran for minutes and found nothing.
MIN_PAGE_SIDE = 32
MAX_PAGE_ASPECT = 20.0


def find_images(folder) -> list[Path]:
    """Page images under ``folder``, recursively, sorted."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: image folder not found")
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)


def degenerate_page(path) -> str | None:
    """Why the image at ``path`` is not a page (too small, extreme aspect ratio), or None; reads
    only the header. An unreadable file is None here: reading it reports that."""
    try:
        with Image.open(path) as image:
            width, height = image.size
    except (OSError, UnidentifiedImageError):
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


def read_page_image(path, format: str = "RGB") -> np.ndarray:
    """A page as an (H, W, 3) uint8 array in ``format`` ("RGB" or "BGR").

    EXIF orientation is applied (W and H are those of the upright page); grayscale, palette,
    16-bit, CMYK and transparent images are converted (transparency onto white paper). A missing,
    truncated or unreadable file raises ``OSError``/``ValueError`` naming it.
    """
    if format not in ("RGB", "BGR"):
        raise ValueError(f"image format must be RGB or BGR, got {format}")
    try:
        with Image.open(path) as image:
            image.load()
            upright = ImageOps.exif_transpose(image)
            array = np.asarray(_to_rgb(upright))
    except FileNotFoundError as error:
        raise FileNotFoundError(f"{path}: image file not found") from error
    except (UnidentifiedImageError, OSError, SyntaxError) as error:
        raise ValueError(f"{path}: cannot read image ({error})") from error
    return array[:, :, ::-1].copy() if format == "BGR" else array
