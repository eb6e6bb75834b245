"""What every OCR engine shares: the registry by name, the error for an engine that cannot
load, and the form of a recognised line.

An engine is a class with ``name`` and ``version`` whose instances map an RGB page array
(H, W, 3) to text lines ``[(box, text, score, polygon), ...]`` (:func:`text_line`). Registering
one makes it a choice of ``tools/ocr_pages.py --engine`` and ``tools/infer.py --ocr-engine``::

    @register_engine
    class MyEngine:
        name = "my-engine"
        ...
"""

import importlib.metadata

import numpy as np

__all__ = [
    "ENGINES",
    "EngineUnavailable",
    "build_engine",
    "engine_class",
    "package_version",
    "register_engine",
    "text_line",
]

ENGINES: dict[str, type] = {}


class EngineUnavailable(RuntimeError):
    """An OCR engine is not installed or cannot load its models offline."""


def register_engine(cls: type) -> type:
    """Class decorator: make ``cls`` buildable by its ``name``."""
    if cls.name in ENGINES and ENGINES[cls.name] is not cls:
        raise ValueError(f"an OCR engine named '{cls.name}' is already registered")
    ENGINES[cls.name] = cls
    return cls


def engine_class(engine) -> type:
    """The class of ``engine``: a registered name, or a class (returned as is)."""
    if not isinstance(engine, str):
        return engine
    if engine not in ENGINES:
        raise ValueError(f"OCR engine '{engine}' is not one of {sorted(ENGINES)}")
    return ENGINES[engine]


def build_engine(engine, **options):
    """An engine by registered name or from its class (any importable class of the form above).
    :class:`EngineUnavailable` says what to install or pass."""
    return engine_class(engine)(**options)


def package_version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def text_line(poly, text, score) -> tuple[list, str, float, list]:
    """One recognised line: ``([x, y, w, h], text, score, polygon)`` from its polygon (N, 2),
    coordinates rounded to 0.1 px."""
    poly = np.asarray(poly, dtype=np.float64).reshape(-1, 2)
    x0, y0 = poly.min(0)
    x1, y1 = poly.max(0)
    box = [round(float(v), 1) for v in (x0, y0, x1 - x0, y1 - y0)]
    return box, str(text), float(score), poly.round(1).tolist()
