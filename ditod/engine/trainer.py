"""Training: one optimizer step over accumulated micro-batches with AMP, full-model gradient
clipping and a NaN guard; a ``DefaultTrainer`` built from this project's parts."""

import contextlib
import itertools
import logging
import time
import weakref

import torch
from detectron2.data import (
    build_detection_test_loader,
    build_detection_train_loader,
    get_detection_dataset_dicts,
)
from detectron2.data.samplers import RepeatFactorTrainingSampler, TrainingSampler
from detectron2.engine import (
    DefaultTrainer,
    SimpleTrainer,
    TrainerBase,
    create_ddp_model,
    hooks,
)
from detectron2.utils import comm
from detectron2.utils.logger import setup_logger
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import Sampler

from ..data.class_sets import check_class_sets
from ..data.datasets import check_mask_annotations
from ..data.mapper import LayoutDatasetMapper
from ..modeling.precision import choose_attention_block, set_attention_query_block
from .checkpoint import LayoutCheckpointer
from .evaluation import LayoutEvaluator
from .optimizer import build_optimizer
from .rng import GatherRNGStates, restore_rank_rng, rng_state

__all__ = ["LayoutTrainStep", "LayoutTrainer", "SkipSampler"]

AMP_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16}


class SkipSampler(Sampler):
    """An infinite per-rank training sampler that starts ``skip`` indices into its stream, so a
    resumed run sees the data the interrupted one had not reached yet."""

    def __init__(self, sampler: Sampler, skip: int = 0):
        self.sampler = sampler
        self.skip = skip

    def __iter__(self):
        yield from itertools.islice(iter(self.sampler), self.skip, None)


class LayoutTrainStep(SimpleTrainer):
    """``run_step`` = one optimizer step over ``accumulation_steps`` micro-batches.

    detectron2 0.6's ``AMPTrainer`` is float16 on CUDA only, one batch a step; this step also
    runs bfloat16 (CPU or CUDA) and accumulates, with torch's ``GradScaler`` enabled for float16.

    Args:
        model, optimizer: as for ``SimpleTrainer``; ``data_loader`` may be set after
            construction (the iterator is created at the first step).
        accumulation_steps: micro-batches per optimizer step.
        amp_dtype: None, ``torch.float16`` (CUDA only, with a ``GradScaler``) or
            ``torch.bfloat16``.
        clip_norm: clip the norm of all gradients together to this value (None: no clipping).
    """

    def __init__(
        self, model, data_loader, optimizer, *, accumulation_steps=1, amp_dtype=None, clip_norm=None
    ):
        TrainerBase.__init__(self)  # SimpleTrainer's __init__ would start the data loader now
        model.train()
        self.model = model
        self.data_loader = data_loader
        self.optimizer = optimizer
        self._data_loader_iter = None
        self.accumulation_steps = accumulation_steps
        self.device_type = next(model.parameters()).device.type
        if amp_dtype == torch.float16 and self.device_type != "cuda":
            raise ValueError(
                "SOLVER.AMP.DTYPE float16 needs a CUDA device; use bfloat16 on CPU "
                "(or turn SOLVER.AMP.ENABLED off)"
            )
        self.amp_dtype = amp_dtype
        # Disabled (a pass-through) unless float16: one code path for every precision.
        self.grad_scaler = torch.amp.GradScaler(
            self.device_type, enabled=amp_dtype == torch.float16
        )
        self.clip_norm = clip_norm

    def _micro_step(self, data, scale: float):
        with torch.autocast(
            self.device_type,
            dtype=self.amp_dtype or torch.float32,
            enabled=self.amp_dtype is not None,
        ):
            loss_dict = self.model(data)
        terms = torch.stack([value.detach().float() for value in loss_dict.values()])
        if not bool(torch.isfinite(terms).all()):  # one host sync for all the terms
            name, value = next((k, v) for k, v in loss_dict.items() if not torch.isfinite(v))
            raise FloatingPointError(
                f"loss '{name}' is {value.detach().float().item()} at iteration {self.iter}; "
                f"all losses: { {k: round(v.item(), 4) for k, v in loss_dict.items()} }. "
                "Lower SOLVER.BASE_LR, enable SOLVER.CLIP_GRADIENTS, or check the data."
            )
        loss = sum(loss_dict.values()) * scale
        self.grad_scaler.scale(loss).backward()
        return {k: v.detach() for k, v in loss_dict.items()}

    def run_step(self):
        assert self.model.training, "[LayoutTrainStep] model was changed to eval mode!"
        if self._data_loader_iter is None:
            self._data_loader_iter = iter(self.data_loader)
        self.optimizer.zero_grad(set_to_none=True)
        data_time, totals = 0.0, {}
        steps = self.accumulation_steps
        for micro in range(steps):
            start = time.perf_counter()
            data = next(self._data_loader_iter)
            data_time += time.perf_counter() - start
            sync = micro < steps - 1 and isinstance(self.model, DistributedDataParallel)
            with self.model.no_sync() if sync else contextlib.nullcontext():
                losses = self._micro_step(data, 1.0 / steps)
            for name, value in losses.items():
                totals[name] = totals.get(name, 0.0) + value / steps
        if self.clip_norm:
            self.grad_scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.clip_norm)
        self.grad_scaler.step(self.optimizer)  # skipped when float16 gradients overflowed
        self.grad_scaler.update()
        self._write_metrics(totals, data_time)

    def state_dict(self):
        return {**super().state_dict(), "grad_scaler": self.grad_scaler.state_dict()}

    def load_state_dict(self, state_dict):
        super().load_state_dict(state_dict)
        if state_dict.get("grad_scaler"):  # empty from a run without float16
            self.grad_scaler.load_state_dict(state_dict["grad_scaler"])


class LayoutTrainer(DefaultTrainer):
    """``DefaultTrainer`` with this project's optimizer, data, evaluator, checkpointer and step.

    One iteration (``SOLVER.MAX_ITER``, LR schedule, checkpoint and eval periods) is one optimizer
    step over ``SOLVER.ACCUMULATION_STEPS`` micro-batches of ``SOLVER.IMS_PER_BATCH`` images.
    Resuming restores model, optimizer, scheduler, AMP scaler, iteration, the position in the
    training data stream and each rank's RNG states (torch, its current CUDA device, numpy,
    Python). It continues exactly as the interrupted run would have (bit-identical weights, as
    tested with one and with two processes) when resumed with the same number of processes and
    ``DATALOADER.NUM_WORKERS 0``; with loader workers, their augmentation RNGs restart from their
    seeds (each worker's draws are not saved), so random augmentations differ after the resume.
    """

    def __init__(self, cfg):
        # DefaultTrainer.__init__'s steps, with three changed: the train loader is built in
        # train(), once a resume has said where the data stream starts; DDP runs without CUDA
        # device ids on CPU ranks, and with unused parameters allowed for text fusion; the step,
        # checkpointer and hooks are this project's.
        TrainerBase.__init__(self)
        if not logging.getLogger("detectron2").isEnabledFor(logging.INFO):
            setup_logger()
        cfg = DefaultTrainer.auto_scale_workers(cfg, comm.get_world_size())
        model = self.build_model(cfg)
        if cfg.SOLVER.AMP.ENABLED and cfg.SOLVER.AMP.DTYPE == "bfloat16":
            block, reason = choose_attention_block(
                cfg.MODEL.LAYOUTLMV3.ATTENTION_QUERY_BLOCK, cfg.MODEL.DEVICE
            )
            # every rank runs rank 0's choice (a timing probe may differ between them)
            block, reason = comm.all_gather((block, reason))[0]
            set_attention_query_block(model, block)
            logging.getLogger(__name__).info("bf16 training: %s", reason)
        optimizer = self.build_optimizer(cfg, model)
        ddp_kwargs = {"find_unused_parameters": not cfg.MODEL.LAYOUTLMV3.IMAGE_ONLY}
        if cfg.MODEL.DEVICE == "cpu":
            ddp_kwargs["device_ids"] = None
        model = create_ddp_model(model, broadcast_buffers=False, **ddp_kwargs)
        solver = cfg.SOLVER
        if solver.AMP.ENABLED and solver.AMP.DTYPE not in AMP_DTYPES:
            raise ValueError(
                f"SOLVER.AMP.DTYPE '{solver.AMP.DTYPE}' is not one of {list(AMP_DTYPES)}"
            )
        full_model_clip = solver.CLIP_GRADIENTS.ENABLED and (
            solver.CLIP_GRADIENTS.CLIP_TYPE == "full_model"
        )
        self._trainer = LayoutTrainStep(
            model,
            None,
            optimizer,
            accumulation_steps=solver.ACCUMULATION_STEPS,
            amp_dtype=AMP_DTYPES[solver.AMP.DTYPE] if solver.AMP.ENABLED else None,
            clip_norm=solver.CLIP_GRADIENTS.CLIP_VALUE if full_model_clip else None,
        )
        self.scheduler = self.build_lr_scheduler(cfg, optimizer)
        self.checkpointer = LayoutCheckpointer(
            model,
            cfg.OUTPUT_DIR,
            strict=cfg.MODEL.LAYOUTLMV3.STRICT_WEIGHTS,
            class_names=check_class_sets(cfg, (*cfg.DATASETS.TRAIN, *cfg.DATASETS.TEST)),
            class_mapping=cfg.MODEL.CLASS_MAPPING,
            trainer=weakref.proxy(self),
        )
        self._resumed_rng = None
        self.rank_rng_states = None
        self.start_iter = 0
        self.max_iter = solver.MAX_ITER
        self.cfg = cfg
        self.register_hooks(self.build_hooks())

    def train(self):
        if self._trainer.data_loader is None:
            self._trainer.data_loader = self.build_train_loader(self.cfg, self.start_iter)
        # The loader's iterator draws its base seed from the global RNG, as it did at iteration
        # 0 of the interrupted run; the RNG state saved with the checkpoint is restored after.
        self._trainer._data_loader_iter = iter(self._trainer.data_loader)
        if self._resumed_rng is not None and not restore_rank_rng(
            self._resumed_rng, comm.get_rank()
        ):
            logging.getLogger(__name__).warning(
                "the checkpoint holds the RNG states of %d processes; rank %d goes on from its "
                "seed (resume is exact with the same number of processes)",
                len(self._resumed_rng),
                comm.get_rank(),
            )
        return super().train()

    def build_hooks(self):
        """detectron2's hooks, plus :class:`GatherRNGStates` on every rank before the
        checkpointer (rank 0) writes."""
        built = super().build_hooks()
        at = next(i for i, hook in enumerate(built) if isinstance(hook, hooks.LRScheduler)) + 1
        built.insert(at, GatherRNGStates(self.cfg.SOLVER.CHECKPOINT_PERIOD))
        return built

    def state_dict(self):
        state = super().state_dict()
        state["_trainer"] = self._trainer.state_dict()
        state["rng"] = self.rank_rng_states or [rng_state()]  # one state per rank
        return state

    def load_state_dict(self, state_dict):
        super().load_state_dict(state_dict)
        if "_trainer" in state_dict:
            self._trainer.load_state_dict(state_dict["_trainer"])
        self._resumed_rng = state_dict.get("rng")

    @classmethod
    def build_optimizer(cls, cfg, model):
        return build_optimizer(cfg, model)

    @classmethod
    def build_train_loader(cls, cfg, start_iter: int = 0):
        """Training batches from ``DATASETS.TRAIN``, starting ``start_iter`` optimizer steps into
        the (seeded) sample stream."""
        dataset = get_detection_dataset_dicts(
            cfg.DATASETS.TRAIN,
            filter_empty=cfg.DATALOADER.FILTER_EMPTY_ANNOTATIONS,
            min_keypoints=0,
            proposal_files=None,
        )
        check_mask_annotations(cfg, cfg.DATASETS.TRAIN)
        seed = cfg.SEED if cfg.SEED >= 0 else None
        if cfg.DATALOADER.SAMPLER_TRAIN == "TrainingSampler":
            sampler = TrainingSampler(len(dataset), seed=seed)
        elif cfg.DATALOADER.SAMPLER_TRAIN == "RepeatFactorTrainingSampler":
            factors = RepeatFactorTrainingSampler.repeat_factors_from_category_frequency(
                dataset, cfg.DATALOADER.REPEAT_THRESHOLD
            )
            sampler = RepeatFactorTrainingSampler(factors, seed=seed)
        else:
            raise ValueError(f"unknown DATALOADER.SAMPLER_TRAIN {cfg.DATALOADER.SAMPLER_TRAIN}")
        per_rank = cfg.SOLVER.IMS_PER_BATCH // comm.get_world_size()
        skip = start_iter * cfg.SOLVER.ACCUMULATION_STEPS * per_rank
        return build_detection_train_loader(
            dataset=dataset,
            mapper=LayoutDatasetMapper(cfg, True),
            sampler=SkipSampler(sampler, skip),
            total_batch_size=cfg.SOLVER.IMS_PER_BATCH,
            aspect_ratio_grouping=cfg.DATALOADER.ASPECT_RATIO_GROUPING,
            num_workers=cfg.DATALOADER.NUM_WORKERS,
        )

    @classmethod
    def build_test_loader(cls, cfg, dataset_name):
        return build_detection_test_loader(
            cfg, dataset_name, mapper=LayoutDatasetMapper(cfg, False)
        )

    @classmethod
    def build_evaluator(cls, cfg, dataset_name, output_folder=None):
        return LayoutEvaluator.from_config(cfg, dataset_name, output_folder)
