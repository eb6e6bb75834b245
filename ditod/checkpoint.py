"""Checkpointer: detectron2 checkpoints (resume, eval), pretrained LayoutLMv3 weights (hub
folders, ``.bin``, ``.safetensors``, unilm detectors), weights-only loading, atomic saves."""

import logging
import os
from pathlib import Path

import torch
from detectron2.checkpoint import DetectionCheckpointer
from safetensors.torch import load_file as load_safetensors

from layoutlmv3.loading import (
    IncompatibleWeights,
    checkpoint_prefix,
    find_weights_file,
    format_report,
    load_checkpoint,
    match_state_dict,
    tensors_of,
)

__all__ = ["LayoutCheckpointer"]

logger = logging.getLogger(__name__)

# Where the LayoutLMv3 model sits in the detector: FPN → LayoutLMv3Backbone → LayoutLMv3Model
# (the same names as unilm's detectors, so their checkpoints load unchanged).
DETECTOR_PREFIX = "backbone.bottom_up.backbone."
# Parts of the detection model a pretrained (non-detection) checkpoint cannot have.
DETECTION_ONLY = ("fpn1.", "fpn2.", "fpn3.", "fpn4.")


def unused_by_config(config) -> tuple[str, ...]:
    """Key prefixes of pretrained weights this configuration does not use: text embeddings of an
    image-only model, attention-bias tables switched off (unilm's detection setting)."""
    unused = []
    if not config.text_embed:
        unused.append("embeddings.")
    if not config.has_relative_attention_bias:
        unused.append("encoder.rel_pos_bias.")
    if not config.has_spatial_attention_bias:
        unused += ["encoder.rel_pos_x_bias.", "encoder.rel_pos_y_bias."]
    return tuple(unused)


def _atomic_torch_save(data, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "wb") as f:
            torch.save(data, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


class LayoutCheckpointer(DetectionCheckpointer):
    """``DetectionCheckpointer`` that also loads pretrained LayoutLMv3 weights into the
    detector's backbone and never unpickles code.

    ``MODEL.WEIGHTS`` may be a detectron2 checkpoint of this detector (or unilm's), a folder as
    downloaded from the hub (``pytorch_model.bin`` / ``model.safetensors``), or a single weights
    file. Pretrained weights are matched to the backbone by their key prefix, with one report of
    missing / unexpected / mis-shaped keys. ``strict=True`` raises
    :class:`layoutlmv3.IncompatibleWeights` instead of loading a checkpoint that does not fit.
    Checkpoints and ``last_checkpoint`` are written to a temporary file, then renamed; they
    carry ``class_names`` (the training data's classes, in model order) when it is set, so that
    inference can name what it finds.
    """

    def __init__(self, model, save_dir="", *, strict: bool = False, class_names=None,
                 **checkpointables):  # fmt: skip
        super().__init__(model, save_dir, **checkpointables)
        self.strict = strict
        self.class_names = list(class_names) if class_names else None

    def load(self, path, *args, **kwargs):
        if path and not Path(path).exists():
            raise FileNotFoundError(
                f"MODEL.WEIGHTS: {path} does not exist (give a checkpoint of this detector, or a "
                "local folder / weights file of pretrained LayoutLMv3, e.g. microsoft/"
                "layoutlmv3-base downloaded from the hub)"
            )
        if path and Path(path).is_dir():
            path = str(find_weights_file(Path(path)))
        return super().load(path, *args, **kwargs)

    def _load_file(self, filename):
        path = Path(filename)
        if path.suffix == ".safetensors":
            loaded = {"model": load_safetensors(str(path))}
        else:
            loaded = load_checkpoint(path)
            if not isinstance(loaded, dict) or not isinstance(loaded.get("model"), dict):
                loaded = {"model": tensors_of(loaded, path)}
        state = loaded["model"]
        if any(key.startswith(DETECTOR_PREFIX) for key in state):
            return loaded  # a detector checkpoint: detectron2 matches it key by key
        return {"model": self._pretrained_backbone_state(state, path), "__author__": str(path)}

    def _pretrained_backbone_state(self, state: dict, path: Path) -> dict:
        backbone = self.model.backbone.bottom_up.backbone
        try:
            checkpoint_prefix(state, path)
        except IncompatibleWeights as error:
            raise IncompatibleWeights(
                f"{error}. MODEL.WEIGHTS must be a checkpoint of this detector or pretrained "
                "LayoutLMv3 weights (e.g. a local copy of microsoft/layoutlmv3-base)"
            ) from None
        prefix, matched, missing, unexpected, mismatched, other = match_state_dict(
            backbone.state_dict(), state, str(path)
        )
        missing = [k for k in missing if not k.startswith(DETECTION_ONLY)]
        unused = unused_by_config(backbone.config)
        if unused:
            ignored = [k for k in unexpected if k.startswith(unused)]
            unexpected = [k for k in unexpected if not k.startswith(unused)]
            if ignored:
                logger.info("%s: %d tensors unused by this configuration", path, len(ignored))
        report = format_report(str(path), prefix, len(matched), missing, unexpected, mismatched,
                               other)  # fmt: skip
        if missing or unexpected or mismatched:
            if self.strict:
                raise IncompatibleWeights(
                    f"{report}\nMODEL.LAYOUTLMV3.STRICT_WEIGHTS is on: the weights do not fit "
                    "the model (is MODEL.LAYOUTLMV3.CONFIG / SIZE the checkpoint's?)"
                )
            logger.warning(report)
        else:
            logger.info(report)
        return {DETECTOR_PREFIX + key: value for key, value in matched.items()}

    def _load_model(self, checkpoint):
        from_detector = "__author__" not in checkpoint  # not converted from pretrained weights
        incompatible = super()._load_model(checkpoint)
        if self.strict and from_detector and incompatible is not None:
            reshaped = {k for k, _, _ in incompatible.incorrect_shapes}  # not also "missing"
            problems = [
                *(f"  missing: {k}" for k in incompatible.missing_keys if k not in reshaped),
                *(f"  unexpected: {k}" for k in incompatible.unexpected_keys),
                *(f"  shape: {k} {a} vs {b}" for k, a, b in incompatible.incorrect_shapes),
            ]
            if problems:
                raise IncompatibleWeights(
                    "MODEL.LAYOUTLMV3.STRICT_WEIGHTS is on and the checkpoint does not fit the "
                    "detector:\n" + "\n".join(problems)
                )
        return incompatible

    def save(self, name: str, **kwargs) -> None:
        if not self.save_dir or not self.save_to_disk:
            return
        data = {"model": self.model.state_dict()}
        for key, obj in self.checkpointables.items():
            data[key] = obj.state_dict()
        if self.class_names:
            data["class_names"] = self.class_names
        data.update(kwargs)
        basename = f"{name}.pth"
        save_file = Path(self.save_dir) / basename
        save_file.parent.mkdir(parents=True, exist_ok=True)
        self.logger.info("Saving checkpoint to %s", save_file)
        _atomic_torch_save(data, save_file)
        self.tag_last_checkpoint(basename)

    def tag_last_checkpoint(self, last_filename_basename: str) -> None:
        path = Path(self.save_dir) / "last_checkpoint"
        tmp = path.with_name(".last_checkpoint.tmp")
        tmp.write_text(last_filename_basename)
        os.replace(tmp, path)
