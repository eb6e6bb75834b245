"""Optional parts of the package and what to install for them: a user who only trains needs
neither Ray nor ONNX Runtime. Imports nothing heavy."""

import importlib

__all__ = ["MissingExtra", "import_extra"]


class MissingExtra(ImportError):
    """A feature needs a package of an extra that is not installed; the message says which."""


def import_extra(module: str, extra: str, feature: str):
    """``module`` imported, or :class:`MissingExtra` naming ``feature`` and the extra to
    install (``pip install 'layoutlmv3-ditod[extra]'``)."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        package = module.split(".")[0]
        raise MissingExtra(
            f"{feature} needs {package}, which is not installed: "
            f"pip install 'layoutlmv3-ditod[{extra}]'"
        ) from error
