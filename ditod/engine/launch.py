"""Where the training processes come from, and how they join one process group.

Three launchers start this project's processes:

- ``torchrun`` (and its elastic agent): it sets ``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``,
  ``LOCAL_WORLD_SIZE``, ``GROUP_RANK``, ``MASTER_ADDR/PORT``; each process joins through the
  agent's store (under a prefix of its restart) and spawns nothing. ``srun`` + ``torchrun``
  (one task per node, torchrun inside) is torchrun: its variables win over SLURM's.
- SLURM's ``srun`` with two tasks or more: ``SLURM_PROCID``, ``SLURM_NTASKS``, ``SLURM_LOCALID``,
  ``SLURM_NODEID``, ``SLURM_NTASKS_PER_NODE`` / ``SLURM_TASKS_PER_NODE``; the master is the first
  host of the step's node list (``MASTER_ADDR`` / ``MASTER_PORT`` override it; the port defaults
  to one derived from the job id, the same in every task).
- neither: ``--num-gpus N`` (``--num-machines``, ``--dist-url``) spawns N processes per machine:
  detectron2's ``launch`` (NCCL) for a CUDA ``MODEL.DEVICE``, gloo CPU processes otherwise.

In every case detectron2's ``comm`` local process group holds the ranks of this machine, one log
line says how the process was started, and a peer that dies ends every other rank within the
collective timeout with a line naming it (each rank counts a heartbeat in the process group's
store; on a failed collective, the ranks whose count stopped are the dead ones).
"""

import itertools
import logging
import os
import re
import sys
import threading
import time
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from detectron2.engine import launch as detectron2_launch
from detectron2.engine.launch import DEFAULT_TIMEOUT, _find_free_port
from detectron2.utils import comm

__all__ = [
    "ProcessPlace",
    "check_launch",
    "expand_nodelist",
    "launch",
    "launched_place",
    "log_process_place",
    "tasks_per_node",
]

logger = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 1.0
BACKENDS = ("", "nccl", "gloo")  # DISTRIBUTED.BACKEND; "": by MODEL.DEVICE


@dataclass(frozen=True)
class ProcessPlace:
    """This process's place in a job started by an outside launcher."""

    launcher: str  # "torchrun" or "slurm"
    rank: int
    world_size: int
    local_rank: int
    local_size: int
    node_rank: int
    master_addr: str
    master_port: int
    restart_count: int = 0  # torchrun's TORCHELASTIC_RESTART_COUNT


def expand_nodelist(nodelist: str) -> list[str]:
    """SLURM's compressed host list, expanded: ``gpu[01-04,07]`` → gpu01 … gpu04, gpu07;
    ``a1,b[1-2]`` → a1, b1, b2; ``rack[1-2]-n[1-2]`` → the product (rack1-n1, rack1-n2, …);
    zero padding kept."""
    hosts = []
    for expression in re.findall(r"(?:[^,\[]|\[[^\]]*\])+", nodelist):
        parts = re.split(r"\[([^\]]*)\]", expression)
        choices = []
        for index, part in enumerate(parts):
            if index % 2 == 0:
                choices.append([part])
                continue
            names = []
            for item in part.split(","):
                low, _, high = item.partition("-")
                if not high:
                    names.append(low)
                    continue
                if int(high) < int(low):
                    raise ValueError(f"SLURM node list '{nodelist}': range {item} goes down")
                names += [str(n).zfill(len(low)) for n in range(int(low), int(high) + 1)]
            choices.append(names)
        hosts += ["".join(combination) for combination in itertools.product(*choices)]
    if not hosts or any(not host for host in hosts):
        raise ValueError(f"SLURM node list '{nodelist}' names no host")
    return hosts


def tasks_per_node(value: str) -> list[int]:
    """SLURM's ``SLURM_TASKS_PER_NODE``, per node: ``4(x2),2`` → [4, 4, 2]."""
    counts = []
    for item in value.split(","):
        match = re.fullmatch(r"(\d+)(?:\(x(\d+)\))?", item.strip())
        if match is None:
            raise ValueError(f"SLURM_TASKS_PER_NODE '{value}': cannot read '{item}'")
        counts += [int(match[1])] * int(match[2] or 1)
    return counts


def launched_place(environ=None) -> ProcessPlace | None:
    """This process's place when torchrun or srun started it; None when neither did (then
    ``--num-gpus`` spawns the processes)."""
    env = os.environ if environ is None else environ
    if all(key in env for key in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR")):
        world_size = int(env["WORLD_SIZE"])
        return ProcessPlace(
            launcher="torchrun",
            rank=int(env["RANK"]),
            world_size=world_size,
            local_rank=int(env["LOCAL_RANK"]),
            local_size=int(env.get("LOCAL_WORLD_SIZE", world_size)),
            node_rank=int(env.get("GROUP_RANK", 0)),
            master_addr=env["MASTER_ADDR"],
            master_port=int(env.get("MASTER_PORT", 29500)),
            restart_count=int(env.get("TORCHELASTIC_RESTART_COUNT", 0)),
        )
    if "SLURM_PROCID" in env and int(env.get("SLURM_NTASKS", 1)) > 1:
        node_rank = int(env.get("SLURM_NODEID", 0))
        if "SLURM_NTASKS_PER_NODE" in env:
            local_size = int(env["SLURM_NTASKS_PER_NODE"])
        else:
            local_size = tasks_per_node(env["SLURM_TASKS_PER_NODE"])[node_rank]
        nodelist = env.get("SLURM_STEP_NODELIST") or env.get("SLURM_JOB_NODELIST", "")
        master = env.get("MASTER_ADDR") or expand_nodelist(nodelist)[0]
        port = env.get("MASTER_PORT") or 20000 + int(env.get("SLURM_JOB_ID", 0)) % 20000
        return ProcessPlace(
            launcher="slurm",
            rank=int(env["SLURM_PROCID"]),
            world_size=int(env["SLURM_NTASKS"]),
            local_rank=int(env.get("SLURM_LOCALID", 0)),
            local_size=local_size,
            node_rank=node_rank,
            master_addr=master,
            master_port=int(port),
        )
    return None


def check_launch(cfg, num_gpus: int, num_machines: int = 1, place=None) -> None:
    """What cannot work, said before any process starts: ``--num-gpus`` under an outside
    launcher, a batch the processes cannot share, more local processes than visible GPUs."""
    place = launched_place() if place is None else place
    on_cuda = str(cfg.MODEL.DEVICE).startswith("cuda")
    backend = cfg.DISTRIBUTED.BACKEND
    if backend not in BACKENDS:
        raise ValueError(f"DISTRIBUTED.BACKEND '{backend}' is not one of '', nccl, gloo")
    if backend == "nccl" and not on_cuda:
        raise ValueError(
            f"DISTRIBUTED.BACKEND nccl needs CUDA, and MODEL.DEVICE is {cfg.MODEL.DEVICE}: CPU "
            "processes run gloo (leave DISTRIBUTED.BACKEND empty)"
        )
    if backend == "gloo" and on_cuda and place is None and num_gpus * num_machines > 1:
        raise ValueError(
            "DISTRIBUTED.BACKEND gloo with a CUDA MODEL.DEVICE runs under torchrun or srun; "
            "--num-gpus spawns NCCL processes (detectron2's launch)"
        )
    if place is not None:
        if num_gpus > 1 or num_machines > 1:
            raise ValueError(
                f"--num-gpus {num_gpus} / --num-machines {num_machines} under {place.launcher}: "
                f"{place.launcher} started this process as rank {place.rank} of "
                f"{place.world_size}; leave --num-gpus and --num-machines out (the launcher "
                "sets the processes)"
            )
        world_size, local_size = place.world_size, place.local_size
    else:
        world_size, local_size = num_gpus * num_machines, num_gpus
    if cfg.SOLVER.IMS_PER_BATCH % world_size:
        raise ValueError(
            f"SOLVER.IMS_PER_BATCH {cfg.SOLVER.IMS_PER_BATCH} does not divide among {world_size} "
            f"processes: make it a multiple of {world_size} (scale SOLVER.BASE_LR with it)"
        )
    if on_cuda and torch.cuda.is_available() and local_size > torch.cuda.device_count():
        raise ValueError(
            f"{local_size} processes on this machine, but {torch.cuda.device_count()} CUDA "
            "devices are visible (CUDA_VISIBLE_DEVICES)"
        )


def launch(
    main_func,
    num_gpus_per_machine: int,
    num_machines: int = 1,
    machine_rank: int = 0,
    dist_url: str | None = None,
    args=(),
    timeout: timedelta = DEFAULT_TIMEOUT,
    device: str = "cuda",
    backend: str = "",
):
    """Run ``main_func(*args)`` in every process of the job: in this one when torchrun or srun
    started it (:func:`launched_place`; over ``backend``, default NCCL on CUDA, else gloo), else
    in ``num_gpus_per_machine × num_machines`` processes spawned here: one per GPU over NCCL when
    ``device`` (``MODEL.DEVICE``) is CUDA and the machine has CUDA, else that many CPU processes
    over gloo."""
    place = launched_place()
    on_cuda = str(device).startswith("cuda") and torch.cuda.is_available()
    if place is not None:
        backend = backend or ("nccl" if on_cuda else "gloo")
        return _run_launched(main_func, place, args, on_cuda, backend, timeout)
    world_size = num_machines * num_gpus_per_machine
    if on_cuda and num_gpus_per_machine > torch.cuda.device_count():
        raise ValueError(
            f"--num-gpus {num_gpus_per_machine}, but this machine has "
            f"{torch.cuda.device_count()} CUDA devices visible (CUDA_VISIBLE_DEVICES)"
        )
    if world_size <= 1 or on_cuda:
        os.environ.setdefault("TORCH_NCCL_ASYNC_ERROR_HANDLING", "1")
        return detectron2_launch(
            main_func,
            num_gpus_per_machine,
            num_machines,
            machine_rank,
            dist_url,
            args=args,
            timeout=timeout,
        )
    if dist_url in (None, "auto"):
        if num_machines > 1:
            raise ValueError("--dist-url auto only works on one machine; give tcp://HOST:PORT")
        dist_url = f"tcp://127.0.0.1:{_find_free_port()}"
    mp.start_processes(
        _cpu_worker,
        nprocs=num_gpus_per_machine,
        args=(main_func, world_size, num_gpus_per_machine, machine_rank, dist_url, args, timeout),
        daemon=False,
        start_method="spawn",
    )


def _cpu_worker(
    local_rank, main_func, world_size, num_per_machine, machine_rank, dist_url, args, timeout
):
    rank = machine_rank * num_per_machine + local_rank
    dist.init_process_group(
        backend="gloo", init_method=dist_url, world_size=world_size, rank=rank, timeout=timeout
    )
    _set_local_process_group(machine_rank)
    _log_place("--num-gpus (spawned here)", rank, world_size, num_per_machine, "gloo", "cpu")
    _run_watched(main_func, args)


def _run_launched(
    main_func, place: ProcessPlace, args, on_cuda: bool, backend: str, timeout: timedelta
):
    if on_cuda:
        os.environ.setdefault("TORCH_NCCL_ASYNC_ERROR_HANDLING", "1")
        torch.cuda.set_device(place.local_rank)
    dist.init_process_group(
        backend=backend,
        store=_job_store(place, timeout),
        rank=place.rank,
        world_size=place.world_size,
        timeout=timeout,
    )
    _set_local_process_group(place.node_rank)
    device = f"cuda:{place.local_rank}" if on_cuda else "cpu"
    restart = f", restart {place.restart_count}" if place.restart_count else ""
    _log_place(
        place.launcher + restart, place.rank, place.world_size, place.local_size, backend, device
    )
    _run_watched(main_func, args)


def _job_store(place: ProcessPlace, timeout: timedelta) -> dist.Store:
    """The job's key-value store at ``MASTER_ADDR:MASTER_PORT``: torchrun's agent holds it
    (``TORCHELASTIC_USE_AGENT_STORE``), else rank 0 opens it. Keys go under the restart's own
    prefix: a restarted group must not read the addresses its dead predecessors published."""
    agent_holds_it = os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True"
    store = dist.TCPStore(
        place.master_addr,
        place.master_port,
        place.world_size,
        is_master=not agent_holds_it and place.rank == 0,
        timeout=timeout,
    )
    return dist.PrefixStore(f"ditod/attempt_{place.restart_count}", store)


def _set_local_process_group(node_rank: int) -> None:
    """detectron2's ``comm._LOCAL_PROCESS_GROUP``: the ranks that share this process's node
    (v0.6 has no helper; every rank creates every node's group, in the same order)."""
    nodes = [None] * dist.get_world_size()
    dist.all_gather_object(nodes, node_rank)
    for node in sorted(set(nodes)):
        group = dist.new_group([rank for rank, n in enumerate(nodes) if n == node])
        if node == node_rank:
            comm._LOCAL_PROCESS_GROUP = group


_started_by = "a single process"


def _log_place(launcher, rank, world_size, local_size, backend, device) -> None:
    global _started_by
    _started_by = (
        f"{launcher}: rank {rank} of world size {world_size}, {local_size} on this "
        f"machine, backend {backend}, device {device}"
    )


def log_process_place() -> None:
    """One log line: which launcher started this process, its rank, world and local size,
    backend and device (call it once the process's logging is set up)."""
    logging.getLogger("ditod").info("process started by %s", _started_by)


class _Heartbeat:
    """Counts ``heartbeat/<rank>`` up in the process group's store every
    :data:`HEARTBEAT_SECONDS`; :meth:`stopped` are the ranks whose count no longer moves."""

    def __init__(self):
        self.store = dist.distributed_c10d._get_default_store()
        self.rank, self.world_size = dist.get_rank(), dist.get_world_size()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="ditod-heartbeat", daemon=True)
        self._thread.start()

    def _beat(self):
        while not self._stop.wait(HEARTBEAT_SECONDS):
            try:
                self.store.add(f"heartbeat/{self.rank}", 1)
            except Exception:  # the store's host is gone: stopped() will say so
                return

    def _counts(self) -> list[int]:
        return [self.store.add(f"heartbeat/{r}", 0) for r in range(self.world_size)]

    def stopped(self) -> str:
        """Which peers are gone, in words ("" if every one still beats)."""
        try:
            before = self._counts()
            time.sleep(3 * HEARTBEAT_SECONDS)
            after = self._counts()
        except Exception:
            return "rank 0 (it held the job's rendezvous store)"
        dead = [r for r in range(self.world_size) if r != self.rank and after[r] == before[r]]
        return ", ".join(f"rank {r}" for r in dead)

    def close(self):
        self._stop.set()


def _run_watched(main_func, args):
    """``main_func(*args)``; when a collective fails because a peer died, one line naming it and
    exit status 1 (the process group is not torn down: it cannot be, with a peer gone)."""
    heartbeat = _Heartbeat() if dist.get_world_size() > 1 else None
    try:
        main_func(*args)
    except (RuntimeError, dist.DistError) as error:
        gone = heartbeat.stopped() if heartbeat is not None else ""
        if not gone:
            raise
        heartbeat.close()
        message = (
            f"rank {dist.get_rank()}: stopping, {gone} of the job ended "
            f"({type(error).__name__}: {str(error).splitlines()[0][:200]})"
        )
        logging.getLogger("ditod").error(message)
        print(f"error: {message}", file=sys.stderr, flush=True)
        logging.shutdown()
        os._exit(1)
    if heartbeat is not None:
        heartbeat.close()
    dist.destroy_process_group()
