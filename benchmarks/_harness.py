"""The benchmarks' one harness: timing (``torch.utils.benchmark`` for a call that can be
repeated, a stopwatch for a whole run done once), and the result JSON (written atomically,
with the machine it was measured on) that ``run_all.py`` tabulates."""

import contextlib
import json
import timeit
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ditod.file_io import write_json_atomic
from ditod.machine import machine

ROOT = Path(__file__).resolve().parents[1]


def measure(function: Callable[[], object], min_run_time: float = 1.0):
    """Seconds per call of ``function()``: ``torch.utils.benchmark.Timer.blocked_autorange`` —
    a warm-up call, then blocks of calls until ``min_run_time`` seconds have been timed — at
    torch's current thread count, CUDA synchronised. Returns the ``Measurement`` (``.median``,
    ``.iqr``, ``.times``: seconds per call)."""
    import torch
    from torch.utils import benchmark

    timer = benchmark.Timer(
        stmt="function()", globals={"function": function}, num_threads=torch.get_num_threads()
    )
    return timer.blocked_autorange(min_run_time=min_run_time)


@dataclass
class Elapsed:
    """Seconds a :func:`stopwatch` block took (set when the block ends)."""

    seconds: float = 0.0


@contextlib.contextmanager
def stopwatch() -> Iterator[Elapsed]:
    """Time one run of a block that is not repeated (a process pool over a dataset, a cold
    start, a subprocess): ``with stopwatch() as elapsed: …; elapsed.seconds``. CUDA work the
    block queued is waited for."""
    import torch

    elapsed = Elapsed()
    start = timeit.default_timer()
    yield elapsed
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    elapsed.seconds = timeit.default_timer() - start


def write_result(summary: dict, path) -> None:
    """Write ``summary`` with its :func:`machine` to ``path`` via a temporary file and print
    it."""
    summary = {**summary, "machine": machine()}
    write_json_atomic(path, summary, indent=2)
    print(json.dumps(summary, indent=2))
