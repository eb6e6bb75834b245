"""Launchers: torchrun, SLURM's srun and --num-gpus give the same training; a dead rank ends the
others with its name; a torchrun restart resumes to the same weights; node lists and wrong
combinations."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import write_rectangle_coco

from ditod.config import load_config
from ditod.engine.launch import check_launch, expand_nodelist, launched_place, tasks_per_node

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "configs" / "tiny" / "cascade_layoutlmv3_tiny.yaml"

# A wrapper around tools/train_net.py that SIGKILLs rank $KILL_RANK after iteration $KILL_ITER,
# in the first run only (not after a torchrun restart): a process that dies as a crash would.
KILLER = """
import os, runpy, signal, sys
import ditod
from detectron2.engine import HookBase
from detectron2.utils import comm
from ditod.engine import trainer

class Kill(HookBase):
    def after_step(self):
        if (self.trainer.iter == int(os.environ["KILL_ITER"])
                and comm.get_rank() == int(os.environ["KILL_RANK"])
                and os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") == "0"):
            os.kill(os.getpid(), signal.SIGKILL)

build_hooks = trainer.LayoutTrainer.build_hooks
trainer.LayoutTrainer.build_hooks = lambda self: [*build_hooks(self), Kill()]
sys.argv = [sys.argv[1], *sys.argv[2:]]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    """Options of a 4-iteration image-only run of the tiny config on rectangle pages, and the
    weights of that run with --num-gpus 2 (the reference)."""
    root = tmp_path_factory.mktemp("launch")
    json_file = write_rectangle_coco(root / "data", num_images=8)
    extra = json.dumps([["rects", str(json_file), str(root / "data" / "images")]])
    opts = [
        "MODEL.LAYOUTLMV3.IMAGE_ONLY",
        "True",
        "MODEL.LAYOUTLMV3.FUSION.TYPE",
        "",
        "MODEL.ROI_HEADS.NUM_CLASSES",
        "2",
        "DATASETS.EXTRA",
        extra,
        "DATASETS.TRAIN",
        '("rects",)',
        "DATASETS.TEST",
        "()",
        "SOLVER.MAX_ITER",
        "4",
        "SOLVER.CHECKPOINT_PERIOD",
        "2",
        "SEED",
        "3",
    ]
    reference = root / "num_gpus"
    result = run(
        [
            sys.executable,
            ROOT / "tools" / "train_net.py",
            "--num-gpus",
            "2",
            "--config-file",
            TINY,
            *opts,
            "OUTPUT_DIR",
            reference,
        ]
    )
    assert result.returncode == 0, result.stderr[-3000:]
    log = result.stdout + result.stderr
    assert "process started by --num-gpus (spawned here): rank 0 of world size 2" in log
    return root, opts, weights(reference)


# torchrun sets 1 thread a process; the other launchers get it too (sums over another number of
# threads round otherwise)
THREADS = {"OMP_NUM_THREADS": "1"}


def run(command, env=None, timeout=600) -> subprocess.CompletedProcess:
    env = {**os.environ, **THREADS, **(env or {})}
    return subprocess.run(
        [str(c) for c in command],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=timeout,
        env=env,
    )


def weights(output: Path) -> dict:
    return torch.load(output / "model_final.pth", weights_only=True)["model"]


def assert_same_weights(a: dict, b: dict) -> None:
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, different[:5]


def torchrun(*args) -> list:
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        "2",
        *args,
    ]


def slurm_env(rank: int, port: int) -> dict:
    """What srun sets for task ``rank`` of 2 on one node, the master pointed at this machine."""
    return {
        "SLURM_PROCID": str(rank),
        "SLURM_LOCALID": str(rank),
        "SLURM_NODEID": "0",
        "SLURM_NTASKS": "2",
        "SLURM_TASKS_PER_NODE": "2",
        "SLURM_JOB_ID": "4242",
        "SLURM_JOB_NODELIST": "node[01]",
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(port),
    }


def start_slurm_tasks(command, port, extra_env=None) -> list[subprocess.Popen]:
    return [
        subprocess.Popen(
            [str(c) for c in command],
            cwd=ROOT,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, **THREADS, **slurm_env(rank, port), **(extra_env or {})},
        )
        for rank in (0, 1)
    ]


@pytest.mark.slow
def test_torchrun_trains_what_num_gpus_trains(job):
    root, opts, reference = job
    result = run(
        torchrun(
            ROOT / "tools" / "train_net.py",
            "--config-file",
            TINY,
            *opts,
            "OUTPUT_DIR",
            root / "torchrun",
        )
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert (
        "process started by torchrun: rank 0 of world size 2, 2 on this machine, "
        "backend gloo, device cpu" in result.stdout
    )
    assert_same_weights(weights(root / "torchrun"), reference)


@pytest.mark.slow
def test_srun_tasks_train_what_num_gpus_trains(job):
    root, opts, reference = job
    command = [
        sys.executable,
        ROOT / "tools" / "train_net.py",
        "--config-file",
        TINY,
        *opts,
        "OUTPUT_DIR",
        root / "srun",
    ]
    tasks = start_slurm_tasks(command, free_port())
    outputs = [task.communicate(timeout=600) for task in tasks]
    assert [task.returncode for task in tasks] == [0, 0], outputs[0][1][-3000:]
    assert "process started by slurm: rank 0 of world size 2" in "".join(outputs[0])
    assert_same_weights(weights(root / "srun"), reference)


@pytest.mark.slow
def test_a_dead_rank_ends_the_others_naming_it(job, tmp_path):
    _, opts, _ = job
    killer = tmp_path / "killer.py"
    killer.write_text(KILLER)
    command = [
        sys.executable,
        killer,
        ROOT / "tools" / "train_net.py",
        "--config-file",
        TINY,
        *opts,
        "OUTPUT_DIR",
        tmp_path / "out",
        "DISTRIBUTED.TIMEOUT_SECONDS",
        "20",
        "SOLVER.MAX_ITER",
        "50",
    ]
    start = time.perf_counter()
    tasks = start_slurm_tasks(command, free_port(), {"KILL_RANK": "1", "KILL_ITER": "1"})
    _, stderr = tasks[0].communicate(timeout=300)
    waited = time.perf_counter() - start
    killed = tasks[1].communicate(timeout=60)
    assert tasks[1].returncode == -signal.SIGKILL, killed[1][-3000:]
    assert tasks[0].returncode == 1, stderr[-3000:]
    assert "error: rank 0: stopping, rank 1 of the job ended" in stderr, stderr[-3000:]
    assert waited < 120  # not 50 iterations, not a 30-minute collective timeout


@pytest.mark.slow
def test_torchrun_restart_resumes_to_the_same_weights(job, tmp_path):
    _, opts, reference = job
    killer = tmp_path / "killer.py"
    killer.write_text(KILLER)
    result = run(
        [
            *torchrun("--max-restarts", "1", killer),
            ROOT / "tools" / "train_net.py",
            "--config-file",
            TINY,
            *opts,
            "OUTPUT_DIR",
            tmp_path / "out",
        ],
        env={"KILL_RANK": "1", "KILL_ITER": "2"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    log = result.stdout + result.stderr
    assert "restart 1 by torchrun: resuming from" in log
    assert "Starting training from iteration 2" in log  # the iteration-1 checkpoint
    assert_same_weights(weights(tmp_path / "out"), reference)


@pytest.mark.parametrize(
    ("nodelist", "hosts"),
    [
        ("node01", ["node01"]),
        ("gpu[01-04,07]", ["gpu01", "gpu02", "gpu03", "gpu04", "gpu07"]),
        ("a1,b[1-2],c", ["a1", "b1", "b2", "c"]),
        ("n[8-11]", ["n8", "n9", "n10", "n11"]),
        ("rack[1-2]-n[1,3]", ["rack1-n1", "rack1-n3", "rack2-n1", "rack2-n3"]),
        ("gpu-[001-002].cluster", ["gpu-001.cluster", "gpu-002.cluster"]),
    ],
)
def test_slurm_node_lists_expand(nodelist, hosts):
    assert expand_nodelist(nodelist) == hosts


def test_slurm_tasks_per_node_and_bad_lists():
    assert tasks_per_node("4(x2),2") == [4, 4, 2]
    assert tasks_per_node("8") == [8]
    with pytest.raises(ValueError, match=r"SLURM_TASKS_PER_NODE '4\(2\)': cannot read"):
        tasks_per_node("4(2)")
    with pytest.raises(ValueError, match=r"SLURM node list 'n\[3-1\]': range 3-1 goes down"):
        expand_nodelist("n[3-1]")


def test_which_launcher_started_the_process():
    assert launched_place({}) is None
    assert launched_place({"SLURM_PROCID": "0", "SLURM_NTASKS": "1"}) is None  # sbatch, 1 task
    slurm = launched_place(
        {
            "SLURM_PROCID": "5",
            "SLURM_NTASKS": "8",
            "SLURM_LOCALID": "1",
            "SLURM_NODEID": "1",
            "SLURM_TASKS_PER_NODE": "4(x2)",
            "SLURM_JOB_NODELIST": "gpu[03-04]",
            "SLURM_JOB_ID": "123",
        }
    )
    assert (
        slurm.launcher,
        slurm.rank,
        slurm.world_size,
        slurm.local_rank,
        slurm.local_size,
        slurm.master_addr,
        slurm.master_port,
    ) == ("slurm", 5, 8, 1, 4, "gpu03", 20123)
    # srun starting one torchrun per node: torchrun's variables win, nothing doubles
    inside = launched_place(
        {
            "SLURM_PROCID": "1",
            "SLURM_NTASKS": "2",
            "RANK": "9",
            "LOCAL_RANK": "1",
            "WORLD_SIZE": "16",
            "LOCAL_WORLD_SIZE": "8",
            "GROUP_RANK": "1",
            "MASTER_ADDR": "gpu03",
            "MASTER_PORT": "29400",
            "TORCHELASTIC_RESTART_COUNT": "2",
        }
    )
    assert (
        inside.launcher,
        inside.rank,
        inside.world_size,
        inside.local_size,
        inside.node_rank,
        inside.restart_count,
    ) == ("torchrun", 9, 16, 8, 1, 2)


def test_wrong_combinations_are_refused_before_any_process_starts():
    cfg = load_config(TINY, ["SOLVER.IMS_PER_BATCH", "6"])
    torchrun_place = launched_place(
        {
            "RANK": "0",
            "LOCAL_RANK": "0",
            "WORLD_SIZE": "4",
            "LOCAL_WORLD_SIZE": "4",
            "MASTER_ADDR": "h",
        }
    )
    with pytest.raises(ValueError, match=r"--num-gpus 4 / --num-machines 1 under torchrun"):
        check_launch(cfg, 4, place=torchrun_place)
    with pytest.raises(ValueError, match=r"IMS_PER_BATCH 6 does not divide among 4 processes"):
        check_launch(cfg, 1, place=torchrun_place)
    with pytest.raises(ValueError, match=r"IMS_PER_BATCH 6 does not divide among 4 processes"):
        check_launch(cfg, 2, num_machines=2, place=None)
    check_launch(cfg, 3, place=None)
    cfg.DISTRIBUTED.BACKEND = "nccl"
    with pytest.raises(ValueError, match=r"BACKEND nccl needs CUDA, and MODEL.DEVICE is cpu"):
        check_launch(cfg, 3, place=None)
    cfg.DISTRIBUTED.BACKEND = "mpi"
    with pytest.raises(ValueError, match=r"DISTRIBUTED.BACKEND 'mpi' is not one of"):
        check_launch(cfg, 3, place=None)
