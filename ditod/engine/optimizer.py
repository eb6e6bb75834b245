"""Optimizer of the detector: AdamW or SGD over parameter groups with per-group LR and weight
decay (no decay on norms, biases and embeddings; backbone LR multiplier; layer-wise LR decay)."""

import torch
from detectron2.solver.build import maybe_add_gradient_clipping
from torch import nn

from .checkpoint import DETECTOR_PREFIX

__all__ = ["build_optimizer", "optimizer_param_groups"]

NO_DECAY_MODULES = (nn.LayerNorm, nn.GroupNorm, nn.modules.batchnorm._NormBase, nn.Embedding)
NO_DECAY_NAMES = ("cls_token", "pos_embed", "rel_pos_bias", "rel_pos_x_bias", "rel_pos_y_bias")
OPTIMIZERS = ("ADAMW", "SGD")


def transformer_depth(name: str, num_layers: int) -> int:
    """Depth of a LayoutLMv3 parameter (name relative to the model) for layer-wise decay:
    embeddings 0, ``encoder.layer.i`` i + 1, everything above (biases tables, pyramid) L + 1."""
    if name.startswith(
        ("cls_token", "pos_embed", "patch_embed.", "embeddings.", "norm.", "LayerNorm.")
    ):
        return 0
    if name.startswith("encoder.layer."):
        return int(name.split(".")[2]) + 1
    return num_layers + 1


def optimizer_param_groups(
    model: nn.Module,
    base_lr: float,
    weight_decay: float,
    backbone_multiplier: float = 1.0,
    layer_decay: float = 1.0,
) -> list[dict]:
    """Parameter groups ``{"params", "lr", "weight_decay"}``, one per distinct (lr, decay).

    Norm weights, biases, embedding tables, ``cls_token``, ``pos_embed`` and the relative-position
    bias tables get no weight decay. Parameters of the LayoutLMv3 backbone (under
    ``backbone.bottom_up.backbone.``) get ``backbone_multiplier`` × ``layer_decay ** (L + 1 -
    depth)`` × ``base_lr``; the rest (FPN, fusion, heads) ``base_lr``.
    """
    model = getattr(model, "module", model)
    num_layers = 0
    for module in model.modules():
        if hasattr(module, "config") and hasattr(module.config, "num_hidden_layers"):
            num_layers = module.config.num_hidden_layers
            break
    groups: dict[tuple[float, float], list] = {}
    seen = set()
    for module_name, module in model.named_modules():
        for param_name, param in module.named_parameters(recurse=False):
            if not param.requires_grad or param in seen:
                continue
            seen.add(param)
            name = f"{module_name}.{param_name}" if module_name else param_name
            no_decay = (
                isinstance(module, NO_DECAY_MODULES)
                or param_name == "bias"
                or param_name in NO_DECAY_NAMES
                or module_name.endswith(NO_DECAY_NAMES)
            )
            lr = base_lr
            if name.startswith(DETECTOR_PREFIX):
                depth = transformer_depth(name[len(DETECTOR_PREFIX) :], num_layers)
                lr *= backbone_multiplier * layer_decay ** (num_layers + 1 - depth)
            key = (lr, 0.0 if no_decay else weight_decay)
            groups.setdefault(key, []).append(param)
    return [
        {"params": params, "lr": lr, "weight_decay": decay}
        for (lr, decay), params in groups.items()
    ]


def build_optimizer(cfg, model: nn.Module) -> torch.optim.Optimizer:
    """``SOLVER.OPTIMIZER`` over :func:`optimizer_param_groups`; ``CLIP_GRADIENTS`` of type
    "value"/"norm" through detectron2's per-parameter clipping ("full_model" is applied by the
    training step)."""
    solver = cfg.SOLVER
    name = solver.OPTIMIZER.upper()
    if name not in OPTIMIZERS:
        raise ValueError(f"SOLVER.OPTIMIZER '{solver.OPTIMIZER}' is not one of {OPTIMIZERS}")
    groups = optimizer_param_groups(
        model, solver.BASE_LR, solver.WEIGHT_DECAY, solver.BACKBONE_MULTIPLIER, solver.LAYER_DECAY
    )
    if name == "ADAMW":
        optimizer_class, kwargs = torch.optim.AdamW, {"betas": tuple(solver.BETAS)}
    else:
        optimizer_class = torch.optim.SGD
        kwargs = {"momentum": solver.MOMENTUM, "nesterov": solver.NESTEROV}
    params = [p for group in groups for p in group["params"]]
    if all(p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in params):
        # One kernel over all parameters instead of a loop over them: the same update (to float
        # rounding), ~5x faster on CPU, where the default is that loop.
        kwargs["fused"] = True
    if solver.CLIP_GRADIENTS.ENABLED and solver.CLIP_GRADIENTS.CLIP_TYPE != "full_model":
        optimizer_class = maybe_add_gradient_clipping(cfg, optimizer_class)
    return optimizer_class(groups, lr=solver.BASE_LR, **kwargs)
