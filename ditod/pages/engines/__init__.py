"""OCR engines, one a file, each registered by name (:func:`register_engine`): ``rapidocr``
(default; its models ship in the wheel), ``paddleocr`` (2.x and 3.x APIs) and ``tesseract``.
Every module of this package is imported here, so a new engine is one file with one decorator;
each engine imports its OCR library only when built."""

import importlib
import pkgutil

from .base import (
    ENGINES,
    EngineUnavailable,
    build_engine,
    engine_class,
    register_engine,
    text_line,
)

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = [
    "ENGINES",
    "EngineUnavailable",
    "build_engine",
    "engine_class",
    "register_engine",
    "text_line",
]
