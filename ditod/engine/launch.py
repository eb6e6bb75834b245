"""``launch`` for multi-process training: detectron2's (NCCL, one process per GPU) for CUDA
configs, the same process layout over gloo for CPU configs or machines without CUDA (detectron2
v0.6 asserts CUDA). The config's ``MODEL.DEVICE`` decides, not whether the machine has a GPU."""

import logging
from datetime import timedelta

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from detectron2.engine import launch as detectron2_launch
from detectron2.engine.launch import DEFAULT_TIMEOUT, _find_free_port
from detectron2.utils import comm

__all__ = ["launch"]

logger = logging.getLogger(__name__)


def launch(main_func, num_gpus_per_machine: int, num_machines: int = 1, machine_rank: int = 0,
           dist_url: str | None = None, args=(), timeout: timedelta = DEFAULT_TIMEOUT,
           device: str = "cuda"):  # fmt: skip
    """Run ``main_func(*args)`` in ``num_gpus_per_machine × num_machines`` processes: one per
    GPU over NCCL when ``device`` (``MODEL.DEVICE``) is CUDA and the machine has CUDA, else that
    many CPU processes over gloo."""
    world_size = num_machines * num_gpus_per_machine
    on_cuda = str(device).startswith("cuda") and torch.cuda.is_available()
    if on_cuda and num_gpus_per_machine > torch.cuda.device_count():
        raise ValueError(
            f"--num-gpus {num_gpus_per_machine}, but this machine has "
            f"{torch.cuda.device_count()} CUDA devices visible (CUDA_VISIBLE_DEVICES)"
        )
    if world_size <= 1 or on_cuda:
        return detectron2_launch(main_func, num_gpus_per_machine, num_machines, machine_rank,
                                 dist_url, args=args, timeout=timeout)  # fmt: skip
    if dist_url in (None, "auto"):
        if num_machines > 1:
            raise ValueError("--dist-url auto only works on one machine; give tcp://HOST:PORT")
        dist_url = f"tcp://127.0.0.1:{_find_free_port()}"
    logger.info("MODEL.DEVICE %s: %d CPU processes over gloo", device, world_size)
    mp.start_processes(
        _cpu_worker,
        nprocs=num_gpus_per_machine,
        args=(main_func, world_size, num_gpus_per_machine, machine_rank, dist_url, args, timeout),
        daemon=False,
        start_method="spawn",
    )


def _cpu_worker(local_rank, main_func, world_size, num_per_machine, machine_rank, dist_url, args,
                timeout):  # fmt: skip
    global_rank = machine_rank * num_per_machine + local_rank
    dist.init_process_group(backend="gloo", init_method=dist_url, world_size=world_size,
                            rank=global_rank, timeout=timeout)  # fmt: skip
    for machine in range(world_size // num_per_machine):
        ranks = list(range(machine * num_per_machine, (machine + 1) * num_per_machine))
        group = dist.new_group(ranks)
        if machine == machine_rank:
            comm._LOCAL_PROCESS_GROUP = group
    comm.synchronize()
    try:
        main_func(*args)
    finally:
        dist.destroy_process_group()
