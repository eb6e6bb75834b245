"""Shims that let FAIR's detectron2 v0.6 (python code only) run on today's stack.

``import ditod`` installs them once (:func:`install_shims`) as an import hook: each applies when
the module it concerns is first imported, before anyone uses it, and ``import ditod`` itself
imports neither torch nor detectron2 (the OCR and page tools stay light). A module already
imported when the hook is installed is shimmed on the spot (DESIGN §5 step 4):

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
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import types
import warnings

__all__ = ["CompiledOpUnavailable", "apply_shims", "install_shims"]

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
    import torch

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


def _old_names() -> None:
    """numpy's removed aliases and ``PIL.Image.LINEAR``, which detectron2 and fvcore name."""
    import numpy as np
    from PIL import Image

    for name, value in _NUMPY_ALIASES.items():
        if name not in np.__dict__:
            setattr(np, name, value)
    if not hasattr(Image, "LINEAR"):
        Image.LINEAR = Image.BILINEAR


def _after_detectron2(detectron2) -> None:
    """The compiled-ops stub, once ``detectron2`` itself has loaded (its submodules import
    ``_C``)."""
    if _has_real_compiled_ops():
        return
    stub = _CompiledOpsStub()
    sys.modules["detectron2._C"] = stub
    detectron2._C = stub
    _register_dispatcher_stubs()


def _after_coco_evaluation(module) -> None:
    if isinstance(sys.modules.get("detectron2._C"), _CompiledOpsStub):
        _use_faster_coco_eval()


def _quiet_jit_script():
    context = warnings.catch_warnings()
    context.__enter__()
    warnings.filterwarnings(
        "ignore", message="`torch.jit.script` is deprecated", category=FutureWarning
    )
    return context


# module → (run before its code, run after it with the module); before returns a context to exit.
_HOOKS = {
    "detectron2": (_old_names, _after_detectron2),
    "detectron2.evaluation.coco_evaluation": (None, _after_coco_evaluation),
    **{name: (_quiet_jit_script, None) for name in _JIT_SCRIPT_AT_IMPORT},
}


class _ShimLoader(importlib.abc.Loader):
    """A module's own loader, with its shim run around the module's code."""

    def __init__(self, loader, before, after):
        self.loader, self.before, self.after = loader, before, after

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        context = self.before() if self.before else None
        try:
            self.loader.exec_module(module)
        finally:
            if context is not None:
                context.__exit__(None, None, None)
        if self.after:
            self.after(module)


class _ExportLoader(importlib.abc.Loader):
    def create_module(self, spec):
        return _ExportWithoutCaffe2(spec)

    def exec_module(self, module):
        pass


class _ShimFinder(importlib.abc.MetaPathFinder):
    """First on ``sys.meta_path``: finds the shimmed modules as the path finder does and wraps
    their loaders; every other import goes on untouched."""

    def find_spec(self, name, path=None, target=None):
        if name not in _HOOKS and name != "detectron2.export":
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return None
        if name == "detectron2.export":
            if importlib.util.find_spec("caffe2") is not None:
                return None
            spec.loader = _ExportLoader()
        else:
            spec.loader = _ShimLoader(spec.loader, *_HOOKS[name])
        return spec


def install_shims() -> None:
    """Install the shims (safe to call more than once): an import hook for modules not imported
    yet, and the shim itself for any already imported."""
    if not any(isinstance(finder, _ShimFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _ShimFinder())
    if "detectron2" in sys.modules:
        _old_names()
        _after_detectron2(sys.modules["detectron2"])
    if "detectron2.evaluation.coco_evaluation" in sys.modules:
        _after_coco_evaluation(sys.modules["detectron2.evaluation.coco_evaluation"])
    if "detectron2" in sys.modules and "detectron2.export" not in sys.modules:
        _open_export_without_caffe2()


def apply_shims() -> None:
    """Install the shims and import what they concern now (detectron2, its box regression and
    evaluation, fvcore's focal loss): for code that needs everything shimmed at once."""
    install_shims()
    for module in ("detectron2", *_JIT_SCRIPT_AT_IMPORT, "detectron2.evaluation.coco_evaluation"):
        if importlib.util.find_spec(module.split(".")[0]) is not None:
            importlib.import_module(module)
