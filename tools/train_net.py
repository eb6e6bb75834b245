#!/usr/bin/env python
"""Train or evaluate a LayoutLMv3 Cascade R-CNN layout detector.

    python tools/train_net.py --config-file configs/publaynet/cascade_layoutlmv3_image.yaml \
        --num-gpus 8 MODEL.WEIGHTS /path/to/layoutlmv3-base OUTPUT_DIR output/publaynet
    python tools/train_net.py --config-file ... --eval-only MODEL.WEIGHTS output/model_final.pth
    python tools/train_net.py --config-file ... --resume
    torchrun --nproc-per-node 8 tools/train_net.py --config-file ...   # or srun (see README)

Arguments and ``KEY VALUE`` overrides are detectron2's (``default_argument_parser``), plus
``--debug``. The config, the datasets' class sets and ``MODEL.ROI_HEADS.NUM_CLASSES`` are checked
before any process starts; ``--eval-only`` needs only ``DATASETS.TEST``, refuses weights that
leave any tensor at its random init, and evaluates in ``TEST.PRECISION`` (auto: what this device
runs fastest at the same accuracy). A mistake ends with one line naming the file or key.
"""

import ditod  # noqa: F401  (its shims must apply before detectron2 is imported)

# isort: split
import json
import logging
import os
import sys
from datetime import timedelta

import torch
from detectron2.engine import default_argument_parser, default_setup
from detectron2.evaluation import verify_results
from detectron2.utils import comm
from detectron2.utils.logger import setup_logger

from ditod import LayoutCheckpointer, LayoutTrainer, launch, register_layout_datasets
from ditod.cli import add_debug_flag, run_tool
from ditod.config import load_config
from ditod.data.class_sets import check_class_sets
from ditod.engine.launch import check_launch, launched_place, log_process_place
from ditod.modeling.precision import apply_inference_precision, check_precision


def datasets_used(cfg, args) -> tuple:
    return tuple(cfg.DATASETS.TEST) if args.eval_only else (*cfg.DATASETS.TRAIN, *cfg.DATASETS.TEST)


def build_config(args):
    """The checked, frozen config; its datasets registered and their classes checked."""
    cfg = load_config(args.config_file, args.opts)
    if cfg.MODEL.DEVICE.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(
            f"MODEL.DEVICE is {cfg.MODEL.DEVICE} but this machine has no CUDA device; "
            "add MODEL.DEVICE cpu to the command line"
        )
    if cfg.MODEL.WEIGHTS and not os.path.exists(cfg.MODEL.WEIGHTS) and not args.resume:
        raise FileNotFoundError(
            f"MODEL.WEIGHTS: {cfg.MODEL.WEIGHTS} does not exist (give a checkpoint of this "
            "detector, or a local folder / weights file of pretrained LayoutLMv3)"
        )
    if args.eval_only:
        check_precision(cfg.TEST.PRECISION, cfg.MODEL.DEVICE)  # a wrong one ends here
    cfg.freeze()
    register_layout_datasets(cfg, datasets_used(cfg, args))
    check_class_sets(cfg, datasets_used(cfg, args))
    return cfg


def setup(args):
    cfg = build_config(args)
    default_setup(cfg, args)
    setup_logger(cfg.OUTPUT_DIR, distributed_rank=comm.get_rank(), name="ditod")
    log_process_place()
    return cfg


def append_metrics(cfg, iteration: int, results) -> None:
    """Append evaluation results to ``OUTPUT_DIR/metrics.json`` as the training writer does."""
    flat = {"iteration": iteration}
    for dataset, tasks in results.items() if isinstance(results, dict) else ():
        for task, metrics in tasks.items() if isinstance(tasks, dict) else ():
            for name, value in metrics.items() if isinstance(metrics, dict) else ():
                flat[f"{dataset}/{task}/{name}"] = value
    with open(os.path.join(cfg.OUTPUT_DIR, "metrics.json"), "a") as f:
        f.write(json.dumps(flat, sort_keys=True) + "\n")


def main(args):
    cfg = setup(args)
    if args.eval_only:
        model = LayoutTrainer.build_model(cfg)
        checkpoint = LayoutCheckpointer(
            model,
            save_dir=cfg.OUTPUT_DIR,
            strict=cfg.MODEL.LAYOUTLMV3.STRICT_WEIGHTS,
            complete=not cfg.MODEL.LAYOUTLMV3.ALLOW_RANDOM_INIT,
            class_names=check_class_sets(cfg, cfg.DATASETS.TEST),
            class_mapping=cfg.MODEL.CLASS_MAPPING,
        ).resume_or_load(cfg.MODEL.WEIGHTS, resume=args.resume)
        model, _ = apply_inference_precision(model, cfg)
        results = LayoutTrainer.test(cfg, model)
        if comm.is_main_process():
            per_dataset = (
                {cfg.DATASETS.TEST[0]: results} if len(cfg.DATASETS.TEST) == 1 else results
            )
            append_metrics(cfg, checkpoint.get("iteration", -1), per_dataset)
            verify_results(cfg, results)
        return results

    trainer = LayoutTrainer(cfg)
    place = launched_place()
    restarted = place is not None and place.restart_count > 0
    if restarted:
        logging.getLogger("ditod").info(
            "restart %d by torchrun: resuming from %s", place.restart_count, cfg.OUTPUT_DIR
        )
    trainer.resume_or_load(resume=args.resume or restarted)
    return trainer.train()


def run(args) -> int:
    cfg = build_config(args)  # mistakes in the config or data end here, before any process starts
    check_launch(cfg, args.num_gpus, args.num_machines)
    launch(
        main,
        args.num_gpus,
        num_machines=args.num_machines,
        machine_rank=args.machine_rank,
        dist_url=args.dist_url,
        args=(args,),
        device=cfg.MODEL.DEVICE,
        timeout=timedelta(seconds=cfg.DISTRIBUTED.TIMEOUT_SECONDS),
        backend=cfg.DISTRIBUTED.BACKEND,
    )
    return 0


if __name__ == "__main__":
    parser = default_argument_parser()
    add_debug_flag(parser)
    sys.exit(run_tool(run, parser.parse_args()))
