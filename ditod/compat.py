"""Shims that let FAIR's detectron2 v0.6 (python code only) run on today's stack.

``import ditod`` installs them once (:func:`install_shims`) as an import hook: each applies when
the module it concerns is first imported, before anyone uses it, and ``import ditod`` itself
imports neither torch nor detectron2 (the OCR and page tools stay light). A module already
imported when the hook is installed is shimmed on the spot:

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
- ``detectron2.data.common.MapDataset``: when a mapper returns ``None`` (detectron2's way to skip a
  bad sample) it retries another index with ``random.sample(set, 1)``, which Python 3.11 refuses
  (a set is not a sequence); the retry draws from the same candidates as a tuple.
- ``detectron2.engine.hooks.LRScheduler`` saves and restores only ``_LRScheduler``s; torch's
  built-in schedulers derive from ``LRScheduler`` since torch 2.0, so theirs were not saved and
  restarted on resume. The hook saves every ``LRScheduler``.
- ``detectron2.modeling.anchor_generator``: ``torch.meshgrid`` without ``indexing=`` warns on
  every run; its grid is made with ``indexing="ij"`` (the old default: the same anchors).
- ``detectron2.engine.defaults._highlight`` colours the config it logs with ANSI codes even
  when the log is a file (a training run's ``log.txt``, a redirected stdout); it colours only
  when stdout is a terminal.
- ``torch.jit.script`` at import time (fvcore's focal loss, detectron2's box regression) raises a
  FutureWarning on torch 2.14 that says nothing actionable to a user of this project; those two
  modules are imported once with exactly that warning filtered. Any other warning still shows.

Every shim only adds what is missing, stands in for the missing compiled ops or replaces code
that is broken on this stack, and each of the last kind checks first that it is broken here.
"""

import functools
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import logging
import random
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


def _random_sample_takes_sets() -> bool:
    try:
        random.Random(0).sample({0}, 1)
    except TypeError:
        return False
    return True


def _map_dataset_getitem(self, idx):
    """``MapDataset.__getitem__`` whose retry draws from a tuple of the candidates."""
    retry_count = 0
    cur_idx = int(idx)
    while True:
        data = self._map_func(self._dataset[cur_idx])
        if data is not None:
            self._fallback_candidates.add(cur_idx)
            return data
        retry_count += 1
        self._fallback_candidates.discard(cur_idx)
        if not self._fallback_candidates:
            raise RuntimeError(
                f"the dataset mapper returned None for every one of the {len(self)} samples"
            )
        cur_idx = self._rng.choice(tuple(self._fallback_candidates))
        if retry_count >= 3:
            logging.getLogger("detectron2.data.common").warning(
                "Failed to apply `_map_func` for idx: %s, retry count: %d", idx, retry_count
            )


def _after_data_common(module) -> None:
    if not _random_sample_takes_sets():
        module.MapDataset.__getitem__ = _map_dataset_getitem


def _is_torch_scheduler(scheduler) -> bool:
    import torch

    return isinstance(scheduler, torch.optim.lr_scheduler.LRScheduler)


def _lr_scheduler_state_dict(self):
    """``hooks.LRScheduler.state_dict`` for every torch ``LRScheduler``."""
    return self.scheduler.state_dict() if _is_torch_scheduler(self.scheduler) else {}


def _lr_scheduler_load_state_dict(self, state_dict):
    """``hooks.LRScheduler.load_state_dict`` for every torch ``LRScheduler``."""
    if _is_torch_scheduler(self.scheduler):
        logging.getLogger("detectron2.engine.hooks").info("Loading scheduler from state_dict ...")
        self.scheduler.load_state_dict(state_dict)


def _after_hooks(module) -> None:
    import torch

    schedulers = torch.optim.lr_scheduler
    if not issubclass(schedulers.StepLR, schedulers._LRScheduler):
        module.LRScheduler.state_dict = _lr_scheduler_state_dict
        module.LRScheduler.load_state_dict = _lr_scheduler_load_state_dict


def _create_grid_offsets(size, stride: int, offset: float, device):
    """detectron2's anchor grid offsets, ``meshgrid`` with an explicit ``indexing="ij"``."""
    import torch

    grid_height, grid_width = size
    shifts_x = torch.arange(
        offset * stride, grid_width * stride, step=stride, dtype=torch.float32, device=device
    )
    shifts_y = torch.arange(
        offset * stride, grid_height * stride, step=stride, dtype=torch.float32, device=device
    )
    shift_y, shift_x = torch.meshgrid(shifts_y, shifts_x, indexing="ij")
    return shift_x.reshape(-1), shift_y.reshape(-1)


def _meshgrid_warns() -> bool:
    import torch

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.meshgrid(torch.zeros(1), torch.zeros(1))
    return bool(caught)


def _after_anchor_generator(module) -> None:
    if _meshgrid_warns():
        module._create_grid_offsets = _create_grid_offsets


def _highlight_on_a_terminal(highlight):
    @functools.wraps(highlight)
    def highlighted(code, filename):
        return highlight(code, filename) if sys.stdout.isatty() else code

    return highlighted


def _after_defaults(module) -> None:
    if "\x1b[" in module._highlight("a: 1\n", "config.yaml"):  # pygments: colours always
        module._highlight = _highlight_on_a_terminal(module._highlight)


# module → (run before its code, run after it with the module); before returns a context to exit.
_HOOKS = {
    "detectron2": (_old_names, _after_detectron2),
    "detectron2.evaluation.coco_evaluation": (None, _after_coco_evaluation),
    "detectron2.data.common": (None, _after_data_common),
    "detectron2.engine.hooks": (None, _after_hooks),
    "detectron2.engine.defaults": (None, _after_defaults),
    "detectron2.modeling.anchor_generator": (None, _after_anchor_generator),
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
    for name, (_, after) in _HOOKS.items():
        if after is not None and name != "detectron2" and name in sys.modules:
            after(sys.modules[name])
    if "detectron2" in sys.modules and "detectron2.export" not in sys.modules:
        _open_export_without_caffe2()


def apply_shims() -> None:
    """Install the shims and import what they concern now (detectron2, its box regression,
    evaluation, data, hooks and anchors, fvcore's focal loss): for code that needs everything
    shimmed at once."""
    install_shims()
    for module in ("detectron2", *_JIT_SCRIPT_AT_IMPORT, *_HOOKS):
        if importlib.util.find_spec(module.split(".")[0]) is not None:
            importlib.import_module(module)
