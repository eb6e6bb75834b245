"""Checkpointer: detectron2 checkpoints (resume, eval), pretrained LayoutLMv3 weights (hub
folders, ``.bin``, ``.safetensors``), unilm's detectors, class sets by name, weights-only
loading, atomic saves."""

import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from detectron2.checkpoint import DetectionCheckpointer

from layoutlmv3.loading import (
    DERIVED_BUFFERS,
    IncompatibleWeights,
    StateMatch,
    find_weights_file,
    format_report,
    match_state_dict,
    read_checkpoint,
    rename_unilm_keys,
)

from ..data.class_sets import ClassSetMismatch, map_checkpoint_classes, remap_class_rows
from ..file_io import atomic_path, write_text_atomic

__all__ = ["LayoutCheckpointer"]

logger = logging.getLogger(__name__)

# Where the LayoutLMv3 model sits in the detector:
# FPN → LayoutLMv3Backbone → LayoutLMv3DetectionModel
# (the same names as unilm's detectors; their pyramid layers are renamed on load).
DETECTOR_PREFIX = "backbone.bottom_up.backbone."
FUSION_PREFIX = "backbone.bottom_up.fusions."
# Parts of the detection model a pretrained (non-detection) checkpoint cannot have.
DETECTION_ONLY = ("fpn1.", "fpn2.", "fpn3.", "fpn4.")
ALLOW_RANDOM_INIT_HINT = (
    "Evaluation, inference and export take every model tensor from MODEL.WEIGHTS; to run with "
    "these at their random init anyway, set MODEL.LAYOUTLMV3.ALLOW_RANDOM_INIT True"
)


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
    with atomic_path(path, fsync=True) as tmp, open(tmp, "wb") as f:
        torch.save(data, f)


def _class_count_hint(mismatched) -> str:
    for key, checkpoint_shape, model_shape in mismatched:
        if key.endswith("cls_score.weight"):
            return (
                f" (the checkpoint was trained on {checkpoint_shape[0] - 1} classes, "
                f"MODEL.ROI_HEADS.NUM_CLASSES is {model_shape[0] - 1})"
            )
    return ""


@dataclass
class _Source:
    """What :meth:`LayoutCheckpointer._load_file` found in ``path``."""

    path: str
    detector: bool
    keys: frozenset = frozenset()
    renamed: int = 0
    backbone_match: StateMatch | None = None  # pretrained weights matched onto the backbone


class LayoutCheckpointer(DetectionCheckpointer):
    """``DetectionCheckpointer`` that also loads pretrained LayoutLMv3 weights into the
    detector's backbone, maps unilm's detectors and class sets, and never unpickles code.

    ``MODEL.WEIGHTS`` may be a detectron2 checkpoint of this detector or of unilm's (their
    ``encoder.fpn1/2`` pyramid keys are renamed), a folder as downloaded from the hub
    (``pytorch_model.bin`` / ``model.safetensors``), or a single weights file. One report says
    what was loaded, what is new by design (detector heads and pyramid on a pretrained backbone,
    fusion layers added to a detector trained without them, classes new to the checkpoint) and
    what is missing, unexpected or mis-shaped.

    Args:
        strict: raise :class:`layoutlmv3.IncompatibleWeights` on any missing, unexpected or
            mis-shaped key (``MODEL.LAYOUTLMV3.STRICT_WEIGHTS``).
        complete: every model tensor must come from the file (evaluation, inference, export):
            anything left at its random init, new by design or not, raises.
        class_names: the dataset's classes in model order; a checkpoint carrying other
            ``class_names`` is refused unless ``class_mapping`` maps them
            (:func:`ditod.data.class_sets.map_checkpoint_classes`). Saved with every checkpoint.
        class_mapping: ``MODEL.CLASS_MAPPING``, ``[[checkpoint class, dataset class], ...]``.

    Checkpoints and ``last_checkpoint`` are written to a temporary file, then renamed.
    """

    def __init__(
        self,
        model,
        save_dir="",
        *,
        strict: bool = False,
        complete: bool = False,
        class_names=None,
        class_mapping=(),
        **checkpointables,
    ):
        super().__init__(model, save_dir, **checkpointables)
        self.strict = strict
        self.complete = complete
        self.class_names = list(class_names) if class_names else None
        self.class_mapping = [list(pair) for pair in class_mapping]
        self._source = None
        self._fresh_class_rows = []

    def load(self, path, *args, **kwargs):
        if not path and self.complete:
            raise IncompatibleWeights(
                "MODEL.WEIGHTS is empty: the detector would run with random weights. Give a "
                f"checkpoint of a trained detector. {ALLOW_RANDOM_INIT_HINT}"
            )
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
        loaded = read_checkpoint(path)
        state = loaded["model"]
        if state and all(key.startswith("module.") for key in state):  # saved from a DDP wrapper
            state = {key[len("module.") :]: value for key, value in state.items()}
        if any(key.startswith(DETECTOR_PREFIX) for key in state):  # a detector checkpoint
            state, renamed = rename_unilm_keys(state, DETECTOR_PREFIX)
            state = {k: v for k, v in state.items() if not k.endswith(DERIVED_BUFFERS)}
            loaded["model"] = state
            self._source = _Source(str(path), True, frozenset(state), renamed)
            return loaded
        converted, match = self._pretrained_backbone_state(state, path)
        self._source = _Source(str(path), False, frozenset(converted), match.renamed, match)
        return {"model": converted, "__author__": str(path)}

    def _pretrained_backbone_state(self, state: dict, path: Path) -> tuple[dict, StateMatch]:
        backbone = self.model.backbone.bottom_up.backbone
        try:
            match = match_state_dict(backbone.state_dict(), state, str(path))
        except IncompatibleWeights as error:  # no LayoutLMv3 encoder keys at all
            raise IncompatibleWeights(
                f"{error}. MODEL.WEIGHTS must be a checkpoint of this detector or pretrained "
                "LayoutLMv3 weights (e.g. a local copy of microsoft/layoutlmv3-base)"
            ) from None
        unused = unused_by_config(backbone.config)
        ignored = [k for k in match.unexpected if k.startswith(unused)] if unused else []
        if ignored:
            logger.info("%s: %d tensors unused by this configuration", path, len(ignored))
            match.unexpected = [k for k in match.unexpected if k not in ignored]
        return {DETECTOR_PREFIX + key: value for key, value in match.matched.items()}, match

    def _load_model(self, checkpoint):
        self._fresh_class_rows = []
        checkpoint_classes = checkpoint.get("class_names")
        if self._source.detector and self.class_mapping and not checkpoint_classes:
            raise ClassSetMismatch(
                f"MODEL.CLASS_MAPPING maps a checkpoint's class names, but {self._source.path} "
                "carries none (it was not saved by this project's trainer)"
            )
        if self._source.detector and checkpoint_classes and self.class_names:
            sources = map_checkpoint_classes(
                checkpoint_classes,
                self.class_names,
                self.class_mapping,
                source=self._source.path,
                allow_new=not self.complete,
            )
            if sources != list(range(len(checkpoint_classes))):
                checkpoint["model"], self._fresh_class_rows = remap_class_rows(
                    checkpoint["model"], self.model.state_dict(), sources, len(checkpoint_classes)
                )
                logger.info(
                    "classes of %s mapped onto the dataset's: %s",
                    self._source.path,
                    ", ".join(
                        f"{checkpoint_classes[i] if i is not None else '(new)'} → {name}"
                        for name, i in zip(self.class_names, sources)
                    ),
                )
        return super()._load_model(checkpoint)

    def _log_incompatible_keys(self, incompatible) -> None:
        """One report of the load; raises in strict mode on any problem, in complete mode on any
        tensor not taken from the file."""
        source = self._source
        reshaped = {key for key, _, _ in incompatible.incorrect_shapes}
        missing = [key for key in incompatible.missing_keys if key not in reshaped]
        if source.detector:
            had_fusion = any(key.startswith(FUSION_PREFIX) for key in source.keys)
            new = [key for key in missing if key.startswith(FUSION_PREFIX) and not had_fusion]
            new += self._fresh_class_rows
            model_state = self.model.state_dict()
            match = StateMatch(
                prefix="",
                matched={k: None for k in source.keys if k in model_state and k not in reshaped},
                missing=[key for key in missing if key not in new],
                unexpected=list(incompatible.unexpected_keys),
                mismatched=list(incompatible.incorrect_shapes),
                other=[],
                renamed=source.renamed,
            )
        else:  # pretrained weights: only the LayoutLMv3 model can come from them
            match = source.backbone_match
            in_backbone = [DETECTOR_PREFIX + key for key in match.missing]
            new = [key for key in missing if key not in in_backbone]
            new += [DETECTOR_PREFIX + k for k in match.missing if k.startswith(DETECTION_ONLY)]
            match.missing = [k for k in match.missing if not k.startswith(DETECTION_ONLY)]
        report = format_report(source.path, match, new)
        problems = match.missing or match.unexpected or match.mismatched
        if self.strict and problems:
            raise IncompatibleWeights(
                f"{report}\nMODEL.LAYOUTLMV3.STRICT_WEIGHTS is on: the weights do not fit the "
                "model (is MODEL.LAYOUTLMV3.CONFIG / SIZE the checkpoint's?)"
            )
        if self.complete:
            at_init = [*match.missing, *(key for key, _, _ in match.mismatched), *new]
            if at_init:
                raise IncompatibleWeights(
                    f"{source.path} leaves {len(at_init)} model tensors at their random init"
                    f"{_class_count_hint(match.mismatched)}:\n{report}\n{ALLOW_RANDOM_INIT_HINT}"
                )
        (logger.warning if problems else logger.info)(report)

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
        write_text_atomic(path, last_filename_basename)
