"""What a measurement ran on, recorded beside it: benchmarks and the demo write it into their
result files so that a number is never explained by hardware nobody wrote down."""

import contextlib
import importlib.metadata
import os

__all__ = ["machine"]


def machine() -> dict:
    """What a number was measured on: the CPU (model, cores, the flags that decide kernels,
    torch's vector ISA), torch's threads, the GPU if any, the versions of torch and ONNX
    Runtime, and the load average while it ran (1, 5, 15 min)."""
    import torch

    from ditod.modeling.precision import cpu_kernel_flags

    flags = cpu_kernel_flags()
    record = {
        "cpu": torch.cpu.get_capabilities().get("cpu_name", ""),
        "cores": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "cpu_capability": flags.pop("capability"),
        "cpu_flags": [name for name, present in flags.items() if present],
        "torch": torch.__version__,
        "load_average": [round(load, 2) for load in os.getloadavg()],
    }
    with contextlib.suppress(importlib.metadata.PackageNotFoundError):
        record["onnxruntime"] = importlib.metadata.version("onnxruntime")
    if torch.cuda.is_available():
        record["gpu"] = torch.cuda.get_device_name()
    return record
