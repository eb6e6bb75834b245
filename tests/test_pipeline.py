"""End to end through tools/train_net.py on the 20 shared PubLayNet pages (OCR derived from the
annotations), tiny text-fused model on CPU: train, eval-only, resume, two processes over gloo."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import import_script

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "tiny" / "cascade_layoutlmv3_tiny.yaml"

pytestmark = pytest.mark.slow


def dataset_opts(samples, tokenizer):
    coco_json, image_root, ocr_root = samples
    extra = json.dumps([["samples", str(coco_json), str(image_root), str(ocr_root)]])
    return [
        "DATASETS.EXTRA",
        extra,
        "DATASETS.TRAIN",
        '("samples",)',
        "DATASETS.TEST",
        '("samples",)',
        "MODEL.LAYOUTLMV3.TEXT.TOKENIZER",
        str(tokenizer),
        "MODEL.ROI_HEADS.NUM_CLASSES",
        "5",
        "SEED",
        "7",
    ]


def train_net(*args, timeout=600):
    command = [sys.executable, str(ROOT / "tools" / "train_net.py"), *map(str, args)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout + result.stderr


def metrics(output_dir):
    lines = (Path(output_dir) / "metrics.json").read_text().splitlines()
    return [json.loads(line) for line in lines]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, block_pages, bpe_folder):
    output = tmp_path_factory.mktemp("train")
    opts = dataset_opts(block_pages, bpe_folder)
    log = train_net("--config-file", CONFIG, *opts, "OUTPUT_DIR", output, "SOLVER.MAX_ITER", 40)
    return output, opts, log


def test_training_lowers_the_loss(trained):
    output, _, _ = trained
    losses = {m["iteration"]: m["total_loss"] for m in metrics(output) if "total_loss" in m}
    assert set(losses) == {19, 39}, losses
    assert losses[39] < 0.9 * losses[19], losses
    assert (output / "model_final.pth").is_file()
    assert (output / "last_checkpoint").read_text() == "model_final.pth"
    assert list(output.glob("events.out.tfevents.*")), "no TensorBoard event file"


def test_eval_only_prints_the_per_class_table(trained):
    output, opts, _ = trained
    log = train_net(
        "--config-file",
        CONFIG,
        "--eval-only",
        *opts,
        "OUTPUT_DIR",
        output,
        "MODEL.WEIGHTS",
        output / "model_final.pth",
    )
    assert "Per-category bbox AP" in log
    for name in ("text", "title", "list", "table", "figure"):
        assert f"| {name}" in log
    last = metrics(output)[-1]
    assert last["iteration"] == 39 and 0 <= last["samples/bbox/AP"] <= 100
    assert (output / "inference" / "samples" / "coco_instances_results.json").is_file()


def test_resume_continues_at_the_saved_iteration(trained, tmp_path):
    output, opts, _ = trained
    log = train_net(
        "--config-file", CONFIG, "--resume", *opts, "OUTPUT_DIR", output, "SOLVER.MAX_ITER", 45
    )
    assert "Starting training from iteration 40" in log
    assert "Loading from" in log and "model_final.pth" in log
    trained_to = max(m["iteration"] for m in metrics(output) if "total_loss" in m)
    assert trained_to == 44


WORKER = textwrap.dedent(
    """
    import sys, torch
    import ditod
    from detectron2.config import get_cfg
    from detectron2.utils import comm
    from ditod import LayoutTrainer, add_layoutlmv3_config, launch, register_layout_datasets

    def main(config_file, opts, out):
        cfg = get_cfg()
        add_layoutlmv3_config(cfg)
        cfg.merge_from_file(config_file)
        cfg.merge_from_list(opts)
        register_layout_datasets(cfg)
        trainer = LayoutTrainer(cfg)
        model = trainer.model.module
        before = torch.cat([p.detach().flatten() for p in model.parameters()])
        trainer.train()
        flat = torch.cat([p.detach().flatten() for p in model.parameters()])
        gathered = comm.all_gather(flat)
        if comm.is_main_process():
            diff = max((g - gathered[0]).abs().max().item() for g in gathered)
            moved = (flat - before).abs().max().item()
            open(out, "w").write(f"{comm.get_world_size()} {diff} {moved} {trainer.iter}")

    if __name__ == "__main__":
        config_file, out, *opts = sys.argv[1:]
        launch(main, 2, args=(config_file, opts, out), device="cpu")  # gloo, even with GPUs
    """
)


def test_two_cpu_processes_agree_on_the_weights(tmp_path, block_pages, bpe_folder):
    script = tmp_path / "two_processes.py"
    script.write_text(WORKER)
    out = tmp_path / "result.txt"
    opts = [
        *dataset_opts(block_pages, bpe_folder),
        "OUTPUT_DIR",
        str(tmp_path / "o"),
        "SOLVER.MAX_ITER",
        "2",
        "SOLVER.CHECKPOINT_PERIOD",
        "100",
    ]
    result = subprocess.run(
        [sys.executable, str(script), str(CONFIG), str(out), *opts],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    world_size, diff, moved, iteration = out.read_text().split()
    assert int(world_size) == 2 and int(iteration) == 2
    assert float(moved) > 1e-6  # the (warm-up) steps changed the weights ...
    assert float(diff) == 0.0  # ... identically in both processes


def test_ablation_trains_what_is_missing_and_tabulates_mean_and_std(
    tmp_path, block_pages, bpe_folder
):
    """Two variants × two seeds, three of the runs already done (their metrics.json): only the
    fourth trains; the table holds each class's AP and mAP, mean ± std over the seeds."""
    from ditod.engine.ablation import final_ap

    (tmp_path / "variants.yaml").write_text(
        'image_only:\n  MODEL.LAYOUTLMV3.IMAGE_ONLY: True\n  MODEL.LAYOUTLMV3.FUSION.TYPE: ""\n'
        "gated:\n  MODEL.LAYOUTLMV3.FUSION.TYPE: gated\n"
    )
    out = tmp_path / "ablation"
    classes = ["text", "title", "list", "table", "figure"]
    done = {("image_only", 0): 10.0, ("image_only", 1): 20.0, ("gated", 0): 30.0}
    for (variant, seed), ap in done.items():
        run = out / variant / f"seed{seed}"
        run.mkdir(parents=True)
        record = {
            "iteration": 3,
            "bbox/AP": ap,
            **{f"bbox/AP-{c}": ap + k for k, c in enumerate(classes)},
        }
        (run / "metrics.json").write_text(
            json.dumps({"iteration": 1, "total_loss": 2.0}) + "\n" + json.dumps(record) + "\n"
        )
    command = [
        sys.executable,
        str(ROOT / "tools" / "ablate.py"),
        "--config-file",
        str(CONFIG),
        "--variants",
        str(tmp_path / "variants.yaml"),
        "--seeds",
        "0",
        "1",
        "--text-only-classes",
        "title",
        "list",
        "--output-dir",
        str(out),
        *dataset_opts(block_pages, bpe_folder),
        "SOLVER.MAX_ITER",
        "3",
        "SOLVER.CHECKPOINT_PERIOD",
        "100",
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert result.stdout.count("\n== ") == 2  # one run trained (its start and its end)
    trained = final_ap(out / "gated" / "seed1" / "metrics.json")
    assert trained is not None and set(trained) == {"AP", *(f"AP-{c}" for c in classes)}

    summary = json.loads((out / "ablation.json").read_text())
    assert summary["image_only"]["map"] == [10.0, 20.0]
    assert summary["image_only"]["text_only_ap"] == [11.5, 21.5]  # (title + list) / 2
    assert summary["image_only"]["stats"]["map"]["mean"] == 15.0
    assert abs(summary["image_only"]["stats"]["map"]["std"] - 7.0711) < 1e-3
    assert summary["gated"]["map"] == [30.0, trained["AP"]]
    table = (out / "ablation.md").read_text()
    assert "| image_only | 19.0 ± 7.1 | 17.0 ± 7.1 |" in table  # figure, list (sorted)
    assert "| 15.0 ± 7.1 | 16.5 ± 7.1 |" in table  # mAP, text-only classes
    assert (out / "ablation.png").stat().st_size > 10_000

    # the same command with another budget: the run it trained is refused, not reused
    again = [*command[:-3], "4", *command[-2:]]  # SOLVER.MAX_ITER 4
    result = subprocess.run(again, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert result.returncode == 2 and "\n== " not in result.stdout
    assert f"{out / 'gated' / 'seed1'} holds a finished run trained with other settings" in (
        result.stderr
    )
    assert "image_only/seed0 has no ablate_settings.json" in result.stderr


def test_ablation_refuses_config_keys_taken_for_class_names(tmp_path, capsys):
    """``--text-only-classes a b KEY VALUE`` would train every run without the override."""
    ablate = import_script("tools/ablate.py")
    with pytest.raises(SystemExit):
        ablate.main(
            [
                "--config-file",
                str(CONFIG),
                "--variants",
                str(tmp_path / "v.yaml"),
                "--output-dir",
                str(tmp_path),
                "--text-only-classes",
                "Figure caption",
                "SOLVER.MAX_ITER",
                "600",
            ]
        )
    assert "took the config key 'SOLVER.MAX_ITER' for a class name" in capsys.readouterr().err


def test_the_real_publaynet_pages_load_and_map(publaynet_samples, bpe_folder):
    """The 20 shared PubLayNet pages (real scans of papers, not generated ones) through the
    loader and the training mapper: every page, every box, with text."""
    from detectron2.data import DatasetCatalog

    from ditod.config import load_config
    from ditod.data import LayoutDatasetMapper, register_layout_dataset

    coco_json, image_root, ocr_root = publaynet_samples
    coco = json.loads(Path(coco_json).read_text())
    register_layout_dataset("real_samples", coco_json, image_root, ocr_root)
    try:
        records = DatasetCatalog.get("real_samples")
    finally:
        DatasetCatalog.remove("real_samples")
    assert len(records) == len(coco["images"]) == 20
    assert sum(len(r["annotations"]) for r in records) == len(coco["annotations"])
    cfg = load_config(str(CONFIG), ["MODEL.LAYOUTLMV3.TEXT.TOKENIZER", str(bpe_folder)])
    mapper = LayoutDatasetMapper(cfg, is_train=True)
    for record in records:
        mapped = mapper(record)
        assert len(mapped["instances"]) == len(record["annotations"]) and len(mapped["input_ids"])
