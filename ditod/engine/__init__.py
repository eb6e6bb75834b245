"""Training and evaluation: the trainer and its step, optimizer, checkpointer, evaluator, and
``launch`` over NCCL or gloo."""

from .checkpoint import LayoutCheckpointer
from .evaluation import LayoutEvaluator
from .launch import launch
from .optimizer import build_optimizer
from .trainer import LayoutTrainer, LayoutTrainStep

__all__ = [
    "LayoutCheckpointer",
    "LayoutEvaluator",
    "LayoutTrainStep",
    "LayoutTrainer",
    "build_optimizer",
    "launch",
]
