"""Count the operations that make the host wait for the GPU, on a CPU run.

On CUDA, reading a value (``.item()``, ``bool(tensor)``) and an output whose size depends on
the data (``nonzero``, boolean indexing, ``repeat_interleave`` without ``output_size``,
``bincount``, ``unique``) each block the host until the GPU has caught up. The same aten
operations run on the CPU, so a dispatch mode can count them there, and the Python stack says
whose code asked for each. (Pageable host-to-device copies also wait, but a CPU run cannot see
them: the model's own copies are pinned and ``non_blocking``, see ``ditod/modeling/rcnn.py``.)
"""

import sys
from collections import Counter
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode

ROOT = Path(__file__).resolve().parents[1]
OURS = (str(ROOT / "ditod") + "/", str(ROOT / "layoutlmv3") + "/")
TORCH = str(Path(torch.__file__).parent) + "/"
# torch's plumbing between a call and its aten op: the frame after these is who asked for it.
PLUMBING = tuple(
    TORCH + name
    for name in (
        "_tensor.py",
        "_ops.py",
        "overrides.py",
        "functional.py",
        "nn/functional.py",
        "nn/modules/module.py",
        "utils/_python_dispatch.py",
        "utils/_device.py",
        "_refs/",
        "_prims_common/",
        "_dynamo/",
        "_compile.py",
    )
)

aten = torch.ops.aten
SYNC_OPS = {
    aten._local_scalar_dense.default: "value read on the host (.item() / bool / int)",
    aten.nonzero.default: "nonzero",
    aten.masked_select.default: "masked_select",
    aten.repeat_interleave.Tensor: "repeat_interleave without output_size",
    aten.bincount.default: "bincount",
    aten._unique2.default: "unique",
}


def _is_sync(func, args, kwargs) -> bool:
    if func is aten.repeat_interleave.Tensor:
        return kwargs.get("output_size") is None and (len(args) < 2 or args[-1] is None)
    if func in SYNC_OPS:
        return True
    if func is aten.index.Tensor:  # boolean-mask indexing runs nonzero on the device
        return any(
            isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in args[1] if i is not None
        )
    return False


class HostSyncCounter(TorchDispatchMode):
    """``with HostSyncCounter() as counter: ...``; ``counter.ours`` counts the syncs this
    project's code (``ditod/``, ``layoutlmv3/``) asks for itself, by ``file:line (what)`` (not
    those of detectron2 or torch.optim it calls); ``counter.total`` counts every sync."""

    def __init__(self):
        super().__init__()
        self.ours = Counter()
        self.total = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if _is_sync(func, args, kwargs or {}):
            self.total += 1
            frame = sys._getframe(1)
            while frame is not None and frame.f_code.co_filename.startswith(PLUMBING):
                frame = frame.f_back
            if frame is not None and frame.f_code.co_filename.startswith(OURS):
                where = frame.f_code.co_filename.removeprefix(str(ROOT) + "/")
                what = SYNC_OPS.get(func, "boolean-mask indexing")
                self.ours[f"{where}:{frame.f_lineno} ({what})"] += 1
        return func(*args, **(kwargs or {}))
