"""Shims that let FAIR's detectron2 v0.6 (python code only) run on today's stack.

Applied once, by ``import ditod``, before anything imports detectron2 (DESIGN §5 step 4):

- ``detectron2._C``: installed without its C++/CUDA extension, detectron2 gets a stub module whose
  version queries answer and whose every compiled op raises :class:`CompiledOpUnavailable` naming
  the op; ``torch.ops.detectron2.nms_rotated``, the one op detectron2 reaches through the torch
  dispatcher, is registered to raise the same error. A real compiled ``_C`` always wins: the stub
  is installed only when none is importable.
- ``COCOEvaluator``'s fast path (``COCOeval_opt``) is C++ in ``_C``; with the stub it is
  faster-coco-eval's ``COCOeval_faster`` (same API, pycocotools-identical stats, ~10× faster).
- ``PIL.Image.LINEAR``: removed in Pillow 10; detectron2's transforms still name it.
- ``numpy.int/float/str/object``: removed in NumPy 1.24/2.0; detectron2 and fvcore still use them.
- ``detectron2.export``: its ``__init__`` imports the Caffe2 exporter, and caffe2 is long gone
  from PyTorch; without caffe2 the package is opened without that import, so its TorchScript
  path (``TracingAdapter``, ``scripting_with_instances``, ``dump_torchscript_IR``) works and
  the Caffe2 names raise an error saying so.
- ``torch.jit.script`` at import time (fvcore's focal loss, detectron2's box regression) raises a
  FutureWarning on torch 2.14 that says nothing actionable to a user of this project; those two
  modules are imported once with exactly that warning filtered. Any other warning still shows.

Every shim only adds what is missing or stands in for the missing compiled ops; none replaces
working code.
"""

import importlib
import importlib.util
import sys
import types
import warnings

import numpy as np
import torch
from PIL import Image

__all__ = ["CompiledOpUnavailable", "apply_shims"]

_NUMPY_ALIASES = {"int": int, "float": float, "str": str, "object": object, "bool": bool}
_JIT_SCRIPT_AT_IMPORT = ("fvcore.nn.focal_loss", "detectron2.modeling.box_regression")


class CompiledOpUnavailable(RuntimeError):
    """A detectron2 compiled (C++/CUDA) op was called in a build that has none."""


def _unavailable(name: str) -> CompiledOpUnavailable:
    return CompiledOpUnavailable(
        f"detectron2._C.{name} is a compiled op, and this detectron2 build has no compiled ops "
        "(installed without its C++/CUDA extension by scripts/install.sh). Use a pure-PyTorch "
        "path instead (e.g. axis-aligned boxes instead of rotated ones), or install a "
        "detectron2 built with its extension."
    )


class _CompiledOpsStub(types.ModuleType):
    """Stand-in for ``detectron2._C``: version queries answer, every op raises on call."""

    def __init__(self):
        super().__init__("detectron2._C")
        self.__file__ = __file__

    @staticmethod
    def get_compiler_version() -> str:
        return "none (detectron2 installed without compiled ops)"

    @staticmethod
    def get_cuda_version() -> str:
        return "none"

    @staticmethod
    def has_cuda() -> bool:
        return False

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)

        def compiled_op(*args, **kwargs):
            raise _unavailable(name)

        compiled_op.__name__ = name
        compiled_op.__qualname__ = f"_C.{name}"
        return compiled_op


# The TorchScript half of detectron2.export: public name → its submodule.
_EXPORT_HOMES = {
    "TracingAdapter": "flatten",
    "flatten_to_tuple": "flatten",
    "scripting_with_instances": "torchscript",
    "dump_torchscript_IR": "torchscript",
}


class _ExportWithoutCaffe2(types.ModuleType):
    """``detectron2.export`` without its Caffe2 half: names resolve from the submodules."""

    def __init__(self, spec):
        super().__init__(spec.name)
        self.__spec__ = spec
        self.__path__ = list(spec.submodule_search_locations)
        self.__file__ = spec.origin

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        if name in _EXPORT_HOMES:
            module = importlib.import_module(f"{self.__name__}.{_EXPORT_HOMES[name]}")
            return getattr(module, name)
        raise AttributeError(
            f"detectron2.export.{name} is not available: it needs caffe2, which PyTorch no "
            "longer ships; TorchScript export (TracingAdapter + torch.jit.trace) works"
        )


def _open_export_without_caffe2() -> None:
    if "detectron2.export" in sys.modules or importlib.util.find_spec("caffe2") is not None:
        return
    spec = importlib.util.find_spec("detectron2.export")
    if spec is not None:
        sys.modules["detectron2.export"] = _ExportWithoutCaffe2(spec)


_dispatcher_stubs = []  # keeps the torch.library registration alive


def _register_dispatcher_stubs() -> None:
    if _dispatcher_stubs:
        return
    lib = torch.library.Library("detectron2", "DEF")
    lib.define("nms_rotated(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")

    def nms_rotated(dets, scores, iou_threshold):
        raise _unavailable("nms_rotated")

    lib.impl("nms_rotated", nms_rotated, "CompositeExplicitAutograd")
    _dispatcher_stubs.append(lib)


def _use_faster_coco_eval() -> None:
    if importlib.util.find_spec("faster_coco_eval") is None:
        return
    from detectron2.evaluation import coco_evaluation
    from faster_coco_eval import COCOeval_faster

    coco_evaluation.COCOeval_opt = COCOeval_faster


def _has_real_compiled_ops() -> bool:
    if "detectron2._C" in sys.modules:
        return True
    try:
        return importlib.util.find_spec("detectron2._C") is not None
    except ModuleNotFoundError:  # detectron2 itself is missing: nothing to shim
        return True


def apply_shims() -> None:
    """Apply all shims; safe to call more than once."""
    for name, value in _NUMPY_ALIASES.items():
        if name not in np.__dict__:
            setattr(np, name, value)
    if not hasattr(Image, "LINEAR"):
        Image.LINEAR = Image.BILINEAR
    if not _has_real_compiled_ops():
        import detectron2

        stub = _CompiledOpsStub()
        sys.modules["detectron2._C"] = stub
        detectron2._C = stub
        _register_dispatcher_stubs()
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message="`torch.jit.script` is deprecated", category=FutureWarning
        )
        for module in _JIT_SCRIPT_AT_IMPORT:
            if importlib.util.find_spec(module.split(".")[0]) is not None:
                importlib.import_module(module)
    if isinstance(sys.modules.get("detectron2._C"), _CompiledOpsStub):
        _use_faster_coco_eval()
    if importlib.util.find_spec("detectron2") is not None:
        _open_export_without_caffe2()
