"""Import path kept for existing code: the checkpointer lives in :mod:`ditod.engine.checkpoint`."""

from .engine.checkpoint import LayoutCheckpointer

__all__ = ["LayoutCheckpointer"]
