"""The arithmetic a trained detector runs inference in (``TEST.PRECISION``), chosen for the
device and the CPU's matrix units at run time.

- ``fp32``: everything in float32.
- ``bf16``: the model under bfloat16 autocast (convolutions, linear layers, matmuls and
  attention in bf16; on a CPU, attention through :func:`layoutlmv3.blocked_attention` where a
  probe finds it faster than PyTorch's fused kernel, as on CPUs without AMX;
  ``MODEL.LAYOUTLMV3.ATTENTION_QUERY_BLOCK``), while the modules named by
  ``TEST.FP32_MODULES`` compute in float32 from float32 inputs. The default, the FPN's output
  convolutions, is where plain autocast loses the AP: their maps feed the RPN and every
  RoIAlign, and stored in bf16 (3 significant digits) they cost the earlier demo model 7 AP
  (today's GroupNorm one 0.9); in fp32 it keeps its fp32 AP and boxes
  (``benchmarks/precision.py``). The box heads' softmax was not it: heads and RPN in fp32 gave
  back 0.3 of the 7.
- ``int8``: the linear layers dynamically quantized to int8 (CPU; on oneDNN, which has VNNI and
  AMX kernels, where torch has it); the attention between them in bf16 where the CPU has bf16
  units (``TEST.INT8_ATTENTION``; on an AVX512-BF16 CPU it halves the attention's share), else
  in fp32.
- ``auto``: on CUDA, bf16 where the GPU supports it, else fp32; on a CPU, bf16 where it has bf16
  matrix instructions (AMX or AVX512-BF16) and a probe matmul confirms they run, int8 where it
  has VNNI but no bf16 and a probe confirms int8 pays, else fp32. One log line says what was
  chosen and why.
"""

import dataclasses
import functools
import logging
import time
import warnings
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from layoutlmv3 import LayoutLMv3DetectionModel
from layoutlmv3.blocked_attention import DEFAULT_QUERY_BLOCK, blocked_attention

__all__ = [
    "PRECISIONS",
    "PrecisionChoice",
    "apply_inference_precision",
    "check_precision",
    "choose_attention_block",
    "choose_int8_attention",
    "choose_precision",
    "cpu_kernel_flags",
    "quantize_dynamic_int8",
    "run_in_fp32",
    "set_attention_query_block",
    "timed_speedup",
]

logger = logging.getLogger(__name__)

PRECISIONS = ("auto", "fp32", "bf16", "int8")
INT8_ATTENTION = ("auto", "bf16", "fp32")
# The CPU flags that decide which kernels run, as torch.cpu.get_capabilities() names them.
KERNEL_FLAGS = (
    "avx2",
    "avx512_f",
    "avx512_vnni",
    "avx512_bf16",
    "avx_vnni",
    "amx_tile",
    "amx_bf16",
    "amx_int8",
)
# A reduced precision must beat fp32 by this factor on the probe to be chosen by ``auto``.
PROBE_MARGIN = 1.2


@dataclass(frozen=True)
class PrecisionChoice:
    """What inference runs in (``fp32``, ``bf16`` or ``int8``) and why; for bf16 on a CPU, the
    attention's query block (0: PyTorch's fused attention) and why; for int8, the attention's
    dtype too (None: the layers' fp32)."""

    precision: str
    reason: str
    attention_query_block: int = 0
    attention_reason: str = ""
    attention_dtype: torch.dtype | None = None


def cpu_kernel_flags() -> dict[str, bool]:
    """The CPU's instruction sets that decide kernels (:data:`KERNEL_FLAGS`), from torch's own
    probe, plus ``capability``: the vector ISA of ATen's kernels (``AVX2``, ``AVX512``…)."""
    capabilities = torch.cpu.get_capabilities()
    flags = {name: bool(capabilities.get(name, False)) for name in KERNEL_FLAGS}
    flags["capability"] = torch.backends.cpu.get_cpu_capability()
    return flags


def timed_speedup(baseline, candidate, rounds: int = 7) -> float:
    """How many times faster ``candidate()`` runs than ``baseline()``: the two called in turn,
    ``rounds`` times each after one warm-up call, the fastest call of each compared. Load that
    comes and goes on the machine (another process, a test run beside it) slows some calls of
    both, not the fastest of either, so it does not decide the answer the way timing one after
    the other does."""
    baseline()
    candidate()
    fastest = [float("inf"), float("inf")]
    for _ in range(rounds):
        for index, run in enumerate((baseline, candidate)):
            start = time.perf_counter()
            run()
            fastest[index] = min(fastest[index], time.perf_counter() - start)
    return fastest[0] / fastest[1]


def _probe_speedup(precision: str) -> float:
    """How many times faster than fp32 a ViT-sized linear layer (256 tokens × 768 → 768) runs in
    ``precision`` here: a few milliseconds that catch instruction sets the CPU reports but a cap
    (``ONEDNN_MAX_CPU_ISA``) or the kernel does not let run."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(256, 768, generator=generator)
    linear = nn.Linear(768, 768).eval()
    with torch.inference_mode():
        if precision == "bf16":

            def reduced():
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    linear(x)
        else:
            quantized = quantize_dynamic_int8(nn.Sequential(linear))

            def reduced():
                quantized(x)

        return timed_speedup(lambda: linear(x), reduced)


def _bf16_units() -> tuple[list[str], float]:
    """The CPU's bf16 matrix units (AMX, AVX512-BF16) and, where it has any, how many times
    fp32 a bf16 linear layer runs on them (:func:`_probe_speedup`; 0 without units)."""
    flags = cpu_kernel_flags()
    units = [name for name in ("amx_bf16", "avx512_bf16") if flags[name]]
    return units, (_probe_speedup("bf16") if units else 0.0)


def _probe_attention_speedup(block: int) -> float:
    """How many times faster than PyTorch's fused bf16 attention :func:`blocked_attention` runs
    here on 4 heads of 1,024 tokens with a full bias (a few tens of ms)."""
    generator = torch.Generator().manual_seed(0)
    query, key, value, bias = (
        torch.randn(shape, generator=generator).bfloat16()
        for shape in [(1, 4, 1024, 64)] * 3 + [(1, 4, 1024, 1024)]
    )
    with torch.inference_mode():
        return timed_speedup(
            lambda: F.scaled_dot_product_attention(query, key, value, attn_mask=bias),
            lambda: blocked_attention(query, key, value, bias, block),
        )


def choose_attention_block(setting: int, device: str) -> tuple[int, str]:
    """The query block bf16 attention (inference, or training under ``SOLVER.AMP``) runs with on
    ``device`` (0: PyTorch's fused attention) and why, for ``setting``
    (``MODEL.LAYOUTLMV3.ATTENTION_QUERY_BLOCK``): -1 picks :func:`blocked_attention` on a CPU
    where a probe finds it at least :data:`PROBE_MARGIN` times faster than the fused kernel; 0
    or a block size is taken as it is."""
    if setting == 0:
        return 0, "fused attention (set by MODEL.LAYOUTLMV3.ATTENTION_QUERY_BLOCK)"
    if setting > 0:
        return setting, (
            f"attention in blocks of {setting} queries (set by "
            "MODEL.LAYOUTLMV3.ATTENTION_QUERY_BLOCK)"
        )
    if torch.device(device).type != "cpu":
        return 0, "fused attention (not a CPU)"
    speedup = _probe_attention_speedup(DEFAULT_QUERY_BLOCK)
    if speedup >= PROBE_MARGIN:
        return DEFAULT_QUERY_BLOCK, (
            f"attention in blocks of {DEFAULT_QUERY_BLOCK} queries: {speedup:.1f}x "
            "PyTorch's fused bf16 attention on this CPU"
        )
    return 0, f"fused attention (blocked ran {speedup:.2f}x it on this CPU)"


def choose_int8_attention(setting: str, block_setting: int) -> tuple[torch.dtype | None, int, str]:
    """The dtype (None: fp32), query block and reason of the attention between int8 linear layers
    for ``setting`` (``TEST.INT8_ATTENTION``): ``auto`` takes bf16 where the CPU has bf16 units
    (AMX or AVX512-BF16) and a probe linear layer confirms they run, ``bf16`` / ``fp32`` as
    said. bf16's query block comes from :func:`choose_attention_block` of ``block_setting``."""
    if setting not in INT8_ATTENTION:
        raise ValueError(
            f"TEST.INT8_ATTENTION '{setting}' is not one of {', '.join(INT8_ATTENTION)}"
        )
    if setting == "fp32":
        return None, 0, "attention in fp32 (set by TEST.INT8_ATTENTION)"
    why = "set by TEST.INT8_ATTENTION"
    if setting == "auto":
        units, speedup = _bf16_units()
        if not units:
            return None, 0, "attention in fp32 (the CPU has no bf16 matrix units)"
        if speedup < PROBE_MARGIN:
            why = f"the CPU reports {'+'.join(units)} but a bf16 linear layer ran {speedup:.2f}x"
            return None, 0, f"attention in fp32 ({why})"
        why = f"the CPU has {'+'.join(units)}"
    block, kernel = choose_attention_block(block_setting, "cpu")
    return torch.bfloat16, block, f"bf16 attention ({why}); {kernel}"


def set_attention_query_block(
    model: nn.Module, block: int, dtype: torch.dtype | None = None
) -> None:
    """Set the bf16 attention's query block (0: fused) of every LayoutLMv3 model in ``model``,
    and the dtype its attention computes in (None: the layers' own)."""
    for module in model.modules():
        if isinstance(module, LayoutLMv3DetectionModel):
            module.set_attention_query_block(block, dtype)


def check_precision(setting: str, device: str) -> None:
    """Refuse a ``TEST.PRECISION`` that is unknown or cannot run on ``device`` (no probe)."""
    if setting not in PRECISIONS:
        raise ValueError(f"TEST.PRECISION '{setting}' is not one of {', '.join(PRECISIONS)}")
    if setting == "int8" and torch.device(device).type == "cuda":
        raise ValueError("TEST.PRECISION int8 runs on the CPU; on CUDA use bf16 or auto")


def choose_precision(setting: str, device: str) -> PrecisionChoice:
    """Resolve ``TEST.PRECISION`` (``auto``, ``fp32``, ``bf16``, ``int8``) for ``device``."""
    check_precision(setting, device)
    on_cuda = torch.device(device).type == "cuda"
    if setting != "auto":
        return PrecisionChoice(setting, "set by TEST.PRECISION")
    if on_cuda:
        if torch.cuda.is_bf16_supported():
            return PrecisionChoice("bf16", f"{torch.cuda.get_device_name()} supports bf16")
        return PrecisionChoice("fp32", f"{torch.cuda.get_device_name()} has no bf16")
    units, speedup = _bf16_units()
    if units:
        if speedup >= PROBE_MARGIN:
            return PrecisionChoice(
                "bf16",
                f"the CPU has {'+'.join(units)}; a bf16 linear layer ran {speedup:.1f}x fp32",
            )
        return PrecisionChoice(
            "fp32",
            f"the CPU reports {'+'.join(units)} but a bf16 linear "
            f"layer ran only {speedup:.2f}x fp32 (a capped ISA?)",
        )
    flags = cpu_kernel_flags()
    vnni = [name for name in ("amx_int8", "avx512_vnni", "avx_vnni") if flags[name]]
    if vnni:
        speedup = _probe_speedup("int8")
        if speedup >= PROBE_MARGIN:
            return PrecisionChoice(
                "int8",
                f"the CPU has {'+'.join(vnni)} and no bf16 units; "
                f"an int8 linear layer ran {speedup:.1f}x fp32",
            )
    return PrecisionChoice(
        "fp32",
        f"the CPU ({flags['capability']}) has no bf16 matrix units and int8 does not pay on it",
    )


def run_in_fp32(module: nn.Module) -> nn.Module:
    """Make ``module`` compute in float32 when called under autocast: floating-point tensor
    inputs cast to float32 and autocast off inside. Changes the instance's ``forward`` only
    (the state dict stays as it is); returns the module."""
    forward = module.forward

    @functools.wraps(forward)
    def fp32_forward(*args, **kwargs):
        device_type = next(module.parameters()).device.type
        with torch.autocast(device_type, enabled=False):
            return forward(*_to_float32(args), **_to_float32(kwargs))

    module.forward = fp32_forward
    return module


def _to_float32(value):
    if isinstance(value, torch.Tensor):
        return value.float() if value.is_floating_point() else value
    if isinstance(value, dict):
        return {key: _to_float32(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_to_float32(item) for item in value)
    return value


def _use_onednn_for_int8() -> None:
    """PyTorch's dynamic int8 linear layers on oneDNN (VNNI and AMX kernels) rather than the
    default FBGEMM (VNNI, no AMX), where this torch build has it."""
    if "onednn" in torch.backends.quantized.supported_engines:
        torch.backends.quantized.engine = "onednn"


def apply_inference_precision(
    model: nn.Module, cfg, choice: PrecisionChoice | None = None
) -> tuple[nn.Module, PrecisionChoice]:
    """``model`` (weights loaded, eval mode) set up to infer in ``choice`` (default:
    :func:`choose_precision` of ``TEST.PRECISION``): for bf16, the autocast dtype of its
    :meth:`inference`, the fp32 modules of ``TEST.FP32_MODULES`` and the attention kernel
    (:func:`choose_attention_block`, unless ``choice`` names it); for int8, its linear layers
    quantized (a new module) and its attention's dtype (:func:`choose_int8_attention`, unless
    ``choice`` names it). Logs the choice in one line. Returns the model and the choice, the
    attention's included."""
    choice = choice or choose_precision(cfg.TEST.PRECISION, cfg.MODEL.DEVICE)
    if choice.precision == "bf16" and not choice.attention_reason:
        block, reason = choose_attention_block(
            cfg.MODEL.LAYOUTLMV3.ATTENTION_QUERY_BLOCK, cfg.MODEL.DEVICE
        )
        choice = dataclasses.replace(choice, attention_query_block=block, attention_reason=reason)
    if choice.precision == "int8" and not choice.attention_reason:
        dtype, block, reason = choose_int8_attention(
            cfg.TEST.INT8_ATTENTION, cfg.MODEL.LAYOUTLMV3.ATTENTION_QUERY_BLOCK
        )
        choice = dataclasses.replace(
            choice, attention_query_block=block, attention_reason=reason, attention_dtype=dtype
        )
    logger.info(
        "inference precision: %s (%s)%s",
        choice.precision,
        choice.reason,
        f"; {choice.attention_reason}" if choice.attention_reason else "",
    )
    if choice.precision == "bf16":
        set_attention_query_block(model, choice.attention_query_block)
        named = dict(model.named_modules())
        for name in cfg.TEST.FP32_MODULES:
            if name not in named:
                raise ValueError(f"TEST.FP32_MODULES: the model has no module '{name}'")
            module = named[name]
            # a cascade's heads are ModuleLists: the stages are called, not the list
            for part in module if isinstance(module, nn.ModuleList) else [module]:
                run_in_fp32(part)
        model.autocast_dtype = torch.bfloat16
    elif choice.precision == "int8":
        set_attention_query_block(model, choice.attention_query_block, choice.attention_dtype)
        model = quantize_dynamic_int8(model)
    return model, choice


def quantize_dynamic_int8(model: nn.Module) -> nn.Module:
    """``model`` with every ``nn.Linear`` (the transformer's and the box heads') replaced by
    PyTorch's dynamically quantized int8 linear (weights int8 per channel, activations
    quantized per batch at run time), on oneDNN where torch has it. CPU only."""
    _use_onednn_for_int8()
    with warnings.catch_warnings():  # torch.ao's deprecation (its successor is torchao, not
        # installed here) and its own call of quantize_per_tensor: nothing a user can act on
        warnings.filterwarnings("ignore", message="torch.quantize_per_tensor", category=UserWarning)
        warnings.filterwarnings("ignore", message="torch.ao.quantization is deprecated")
        return torch.ao.quantization.quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8)
