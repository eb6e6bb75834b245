"""What a first multi-GPU run would meet, checked on the CPU: launch routing by MODEL.DEVICE,
RNG state per rank (and per current device), taps that leave layers unused, the attention
bias's layout and dtype, host syncs per training step, and an exact resume of two processes."""

import importlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from conftest import write_rectangle_coco
from detectron2.modeling import build_model
from detectron2.structures import Boxes, Instances
from detectron2.utils.events import EventStorage
from host_syncs import HostSyncCounter
from transformers import LayoutLMv3Config

from ditod.config import load_config
from ditod.engine import trainer as trainer_module
from ditod.engine.rng import restore_rank_rng, rng_state
from ditod.engine.trainer import LayoutTrainStep
from layoutlmv3 import LayoutLMv3DetectionModel

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "configs" / "tiny" / "cascade_layoutlmv3_tiny.yaml"
launch_module = importlib.import_module(
    "ditod.engine.launch"
)  # ditod.engine.launch is also the function


@pytest.fixture
def machine_with_8_gpus(monkeypatch):
    """A CUDA machine as ditod.engine.launch sees it, with launchers that only record calls."""
    calls = []
    monkeypatch.setattr(launch_module.torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(launch_module.torch.cuda, "device_count", lambda: 8)
    monkeypatch.setattr(launch_module, "detectron2_launch", lambda *a, **k: calls.append("nccl"))
    monkeypatch.setattr(launch_module.mp, "start_processes", lambda *a, **k: calls.append("gloo"))
    return calls


ROUTES = [("cpu", 2, "gloo"), ("cuda", 2, "nccl"), ("cuda:0", 8, "nccl"), ("cpu", 1, "nccl")]


@pytest.mark.parametrize("device, gpus, expected", ROUTES)
def test_launch_follows_model_device_not_the_machine(machine_with_8_gpus, device, gpus, expected):
    """A CPU config on a CUDA machine runs CPU processes over gloo (one process: detectron2's
    launch, which just calls main)."""
    launch_module.launch(print, gpus, device=device)
    assert machine_with_8_gpus == [expected]


def test_launch_refuses_more_gpus_than_visible(machine_with_8_gpus):
    with pytest.raises(ValueError, match=r"--num-gpus 16, but this machine has 8 CUDA devices"):
        launch_module.launch(print, 16, device="cuda")


def test_resume_restores_this_rank_and_only_the_current_device(monkeypatch):
    """An 8-GPU checkpoint (8 per-rank states; or an old one with every device's CUDA state)
    resumed with one visible GPU: no IndexError, one CUDA state set, the rank's own."""
    restored = []
    base = {**rng_state(), "cuda": None}
    monkeypatch.setattr(trainer_module.torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(trainer_module.torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(trainer_module.torch.cuda, "set_rng_state", restored.append)
    ranks = [{**base, "cuda": torch.full((4,), rank, dtype=torch.uint8)} for rank in range(8)]
    assert restore_rank_rng(ranks, 3) and restored == [ranks[3]["cuda"]]
    old = {**base, "cuda": [torch.full((4,), device, dtype=torch.uint8) for device in range(8)]}
    restored.clear()
    assert restore_rank_rng(old, 0) and len(restored) == 1 and restored[0][0] == 0
    assert not restore_rank_rng(old, 1)  # an old checkpoint has rank 0's state only
    assert not restore_rank_rng(ranks, 8)  # more processes than the checkpoint had


def test_taps_that_leave_layers_unused_are_refused():
    config = LayoutLMv3Config(
        hidden_size=32,
        num_hidden_layers=24,
        num_attention_heads=2,
        intermediate_size=64,
        coordinate_size=4,
        shape_size=8,
        vocab_size=50,
    )
    with pytest.raises(
        ValueError,
        match=r"leave layers 12\.\.23 of the 24-layer model unused.*"
        r"layer7/11/15/23",
    ):
        LayoutLMv3DetectionModel(config, detection=True)  # the base taps 3/5/7/11 on a large model
    LayoutLMv3DetectionModel(
        config, detection=True, out_features=("layer7", "layer11", "layer15", "layer23")
    )
    cfg = load_config(ROOT / "configs/publaynet/cascade_layoutlmv3_large_image.yaml")
    assert list(cfg.MODEL.LAYOUTLMV3.OUT_FEATURES) == list(cfg.MODEL.FPN.IN_FEATURES)


def test_attention_bias_is_built_once_contiguous_in_the_compute_dtype(monkeypatch):
    config = LayoutLMv3Config(
        hidden_size=32,
        num_hidden_layers=3,
        num_attention_heads=2,
        intermediate_size=64,
        coordinate_size=4,
        shape_size=8,
        vocab_size=50,
    )  # biases on, as in pre-training
    model = LayoutLMv3DetectionModel(config)
    masks = []
    attention = F.scaled_dot_product_attention

    def sdpa(*args, attn_mask=None, **kwargs):
        masks.append(attn_mask)
        return attention(*args, attn_mask=attn_mask, **kwargs)

    monkeypatch.setattr("layoutlmv3.modeling.F.scaled_dot_product_attention", sdpa)
    ids = torch.randint(3, 50, (2, 7))
    mask = torch.ones(2, 7, dtype=torch.long)
    mask[1, 5:] = 0
    box = torch.tensor([10, 20, 110, 40]).repeat(2, 7, 1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        model(input_ids=ids, bbox=box, attention_mask=mask, pixel_values=torch.randn(2, 3, 64, 32))
    length = 7 + 1 + 4 * 2
    assert len(masks) == 3 and all(m is masks[0] for m in masks)  # one bias for every layer
    bias = masks[0]
    assert bias.dtype == torch.bfloat16 and bias.shape == (2, 2, length, length)
    assert bias.stride(-1) == 1 and bias.stride(-2) % 16 == 0  # rows padded to 16
    assert (bias[1, :, :, 5:7] == torch.finfo(torch.bfloat16).min).all()  # padded keys
    assert (bias[0, :, :, 5:7] > -100).all() and (bias[1, :, :, :5] > -100).all()


def two_pages(seed):
    generator = torch.Generator().manual_seed(seed)
    pages = []
    for length in (40, 25):
        instances = Instances((320, 256))
        instances.gt_boxes = Boxes(torch.tensor([[10.0, 20.0, 200.0, 60.0], [30, 100, 240, 300]]))
        instances.gt_classes = torch.tensor([0, 1])
        ids = torch.randint(3, 200, (length,), generator=generator)
        corner = torch.randint(0, 500, (length, 2), generator=generator)
        image = torch.randint(0, 255, (3, 320, 256), generator=generator).float()
        box = torch.cat([corner, corner + 100], 1)
        pages.append(
            {
                "image": image,
                "instances": instances,
                "input_ids": ids,
                "bbox": box,
                "height": 320,
                "width": 256,
            }
        )
    return pages


def test_host_syncs_per_training_step_stay_bounded():
    """Syncs this project's code asks for in one step of the text-fused detector (detectron2's
    own are not counted): the fusion's pair count and one finiteness check of all loss terms.
    Before: 13, plus 6 tensors built from Python data inside the step."""
    cfg = load_config(TINY, ["MODEL.ROI_HEADS.NUM_CLASSES", "2"])
    torch.manual_seed(0)
    model = build_model(cfg)
    optimizer = torch.optim.AdamW(model.parameters(), 1e-4)
    step = LayoutTrainStep(model, iter([two_pages(0), two_pages(1)]), optimizer, clip_norm=1.0)
    with EventStorage(0):
        step.run_step()
        with HostSyncCounter() as counter:
            step.run_step()
    assert counter.total > 50  # detectron2's sampling does sync: the counter sees them
    assert sum(counter.ours.values()) <= 2, dict(counter.ours)


@pytest.mark.slow
def test_two_processes_resume_exactly(tmp_path):
    """tools/train_net.py --num-gpus 2 on CPU (2 gloo processes), image-only, every layer tapped
    (a 6-layer model tapping 1/3/4/5, as large taps 7/11/15/23): 4 iterations straight vs 2 +
    resume from the iteration-1 checkpoint give identical weights (each rank restores its own
    RNG and data position)."""
    json_file = write_rectangle_coco(tmp_path / "data", num_images=8)
    extra = json.dumps([["rects", str(json_file), str(tmp_path / "data" / "images")]])
    config = tmp_path / "config.json"
    config.write_text(
        json.dumps(
            {
                "hidden_size": 48,
                "num_hidden_layers": 6,
                "num_attention_heads": 3,
                "intermediate_size": 96,
                "coordinate_size": 8,
                "shape_size": 8,
                "vocab_size": 50,
                "hidden_dropout_prob": 0.0,
                "attention_probs_dropout_prob": 0.0,
            }
        )
    )
    taps = '["layer1", "layer3", "layer4", "layer5"]'
    opts = [
        "MODEL.LAYOUTLMV3.IMAGE_ONLY",
        "True",
        "MODEL.LAYOUTLMV3.FUSION.TYPE",
        "",
        "MODEL.LAYOUTLMV3.CONFIG",
        str(config),
        "MODEL.LAYOUTLMV3.OUT_FEATURES",
        taps,
        "MODEL.FPN.IN_FEATURES",
        taps,
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

    def train(output, *extra_args):
        command = [
            sys.executable,
            str(ROOT / "tools" / "train_net.py"),
            "--config-file",
            str(TINY),
            "--num-gpus",
            "2",
            *extra_args,
            *opts,
            "OUTPUT_DIR",
            str(output),
        ]
        result = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=ROOT)
        assert result.returncode == 0, result.stderr[-3000:]
        return result.stdout + result.stderr

    log = train(tmp_path / "straight")
    assert "World size: 2" in log
    resumed = tmp_path / "resumed"
    resumed.mkdir()
    shutil.copy(tmp_path / "straight" / "model_0000001.pth", resumed)
    (resumed / "last_checkpoint").write_text("model_0000001.pth")
    assert "Starting training from iteration 2" in train(resumed, "--resume")
    a = torch.load(tmp_path / "straight" / "model_final.pth", weights_only=True)["model"]
    b = torch.load(resumed / "model_final.pth", weights_only=True)["model"]
    first = torch.load(resumed / "model_0000001.pth", weights_only=True)["model"]
    assert any(not torch.equal(a[k], first[k]) for k in a)  # iterations 2 and 3 trained
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, different[:5]
