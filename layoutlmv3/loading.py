"""Load LayoutLMv3 weights from single weight files and unilm checkpoints (hub folders load
through transformers' ``from_pretrained``; see ``LayoutLMv3DetectionModel.from_pretrained``).

Checkpoint keys are mapped onto the model's by stripping whatever prefix sits in front of the
LayoutLMv3 names (``layoutlmv3.`` in hub checkpoints, ``backbone.bottom_up.backbone.`` in unilm's
detectron2 checkpoints, none in a saved model); the prefix is found, not guessed
from a list. unilm's detectors hold the pyramid layers under ``encoder.fpn1/2``; they are renamed
to this model's ``fpn1/2`` (the only difference in their key layout). Files are read with
``torch.load(weights_only=True)`` or safetensors.
"""

import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file as load_safetensors
from transformers import LayoutLMv3Config

__all__ = [
    "IncompatibleWeights",
    "StateMatch",
    "UnsafeCheckpoint",
    "checkpoint_prefix",
    "find_weights_file",
    "load_checkpoint",
    "load_pretrained",
    "load_state_dict",
    "match_state_dict",
    "rename_unilm_keys",
    "tensors_of",
]

logger = logging.getLogger(__name__)

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
# A key every LayoutLMv3 checkpoint has, whatever prefix sits in front of it.
ANCHOR_KEYS = ("encoder.layer.0.attention.self.query.weight",)
# Buffers transformers keeps but this model derives (position ids, 224×224 visual boxes).
DERIVED_BUFFERS = ("embeddings.position_ids", "visual_bbox")


class IncompatibleWeights(RuntimeError):
    """Checkpoint keys do not match the model (raised in strict mode)."""


def find_weights_file(folder: Path) -> Path:
    for name in WEIGHT_FILES:
        if (folder / name).is_file():
            return folder / name
    raise FileNotFoundError(
        f"{folder}: no weights file ({' or '.join(WEIGHT_FILES)}); expected a folder saved by "
        "transformers' save_pretrained or downloaded from the hub"
    )


class UnsafeCheckpoint(ValueError):
    """A torch checkpoint that cannot be loaded with ``weights_only=True``."""


def load_checkpoint(path: str | Path):
    """``torch.load(path, weights_only=True)`` on CPU; a pickle that needs code raises
    :class:`UnsafeCheckpoint` naming the file."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise UnsafeCheckpoint(
            f"{path}: not a weights-only torch checkpoint ({error.__class__.__name__}: "
            f"{str(error).splitlines()[0]}). Checkpoints that need arbitrary code to unpickle are "
            "refused; re-save the state dict with torch.save(model.state_dict(), ...)"
        ) from error


def read_checkpoint(path: str | Path) -> dict:
    """A weights file as ``{"model": tensors, ...}``: a ``.safetensors`` file's tensors, or a
    torch pickle loaded with ``weights_only=True`` (its tensors may sit under a ``model``,
    ``state_dict`` or ``module`` key; a detectron2 checkpoint's other entries, ``iteration``,
    ``class_names`` …, are kept)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: weights file not found")
    if path.suffix == ".safetensors":
        return {"model": load_safetensors(str(path))}
    loaded = load_checkpoint(path)
    if isinstance(loaded, dict) and isinstance(loaded.get("model"), dict):
        return {**loaded, "model": tensors_of(loaded["model"], path)}
    return {"model": tensors_of(loaded, path)}


def load_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a weights file (see :func:`read_checkpoint`)."""
    return read_checkpoint(path)["model"]


def read_config(path: str | Path) -> LayoutLMv3Config:
    """The ``LayoutLMv3Config`` of a ``config.json``, or of the one in a checkpoint folder."""
    path = Path(path)
    path = path / "config.json" if path.is_dir() else path
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: no LayoutLMv3 config.json here (give a config.json or the folder of a "
            "downloaded LayoutLMv3 checkpoint)"
        )
    return LayoutLMv3Config.from_json_file(str(path))


def tensors_of(checkpoint, source) -> dict[str, torch.Tensor]:
    """The tensors of a loaded checkpoint, unwrapped from a ``model``, ``state_dict`` or
    ``module`` key (as detectron2 and others save them)."""
    for key in ("model", "state_dict", "module"):
        if isinstance(checkpoint, dict) and isinstance(checkpoint.get(key), dict):
            checkpoint = checkpoint[key]
    if not isinstance(checkpoint, dict):
        raise ValueError(f"{source}: holds a {type(checkpoint).__name__}, not a state dict")
    return {k: v for k, v in checkpoint.items() if isinstance(v, torch.Tensor)}


def checkpoint_prefix(keys, source) -> str:
    for key in keys:
        for anchor in ANCHOR_KEYS:
            if key.endswith(anchor):
                return key[: -len(anchor)]
    raise IncompatibleWeights(
        f"{source}: no LayoutLMv3 encoder weights in this checkpoint (no key ending in "
        f"'{ANCHOR_KEYS[0]}'); is it a checkpoint of another model?"
    )


# unilm's detectors keep the pyramid layers in the encoder (layoutlmft's LayoutLMv3Encoder owns
# fpn1..fpn4; fpn3 is an identity and fpn4 a max-pool, so only fpn1 and fpn2 hold tensors); this
# model owns them itself. Every other name of their detection model equals this one's.
UNILM_PYRAMID_KEYS = ("encoder.fpn1.", "encoder.fpn2.")


def rename_unilm_keys(state: dict, prefix: str = "") -> tuple[dict, int]:
    """``state`` with unilm's detector key layout mapped onto this model's:
    ``<prefix>encoder.fpnN.*`` → ``<prefix>fpnN.*``. Returns the new dict and how many keys
    were renamed."""
    old = tuple(prefix + key for key in UNILM_PYRAMID_KEYS)
    renamed = {}
    for key, value in state.items():
        if key.startswith(old):
            key = prefix + key[len(prefix) + len("encoder.") :]
        renamed[key] = value
    return renamed, sum(key.startswith(old) for key in state)


@dataclass
class StateMatch:
    """Checkpoint keys mapped onto a model's (:func:`match_state_dict`).

    Attributes:
        prefix: the checkpoint's key prefix in front of the LayoutLMv3 names.
        matched: the tensors to load, by model key.
        missing: model keys with no checkpoint tensor.
        unexpected: checkpoint keys under the prefix with no model tensor.
        mismatched: ``(key, checkpoint shape, model shape)`` of keys in both, shapes differing.
        other: checkpoint keys outside the prefix (task heads, detector parts).
        renamed: keys renamed from unilm's detector layout.
    """

    prefix: str
    matched: dict
    missing: list
    unexpected: list
    mismatched: list
    other: list
    renamed: int = 0


def match_state_dict(model_state: dict, checkpoint: dict, source: str = "checkpoint") -> StateMatch:
    """Map checkpoint keys onto ``model_state``'s: the prefix stripped, unilm's detector layout
    renamed (:func:`rename_unilm_keys`), shapes compared."""
    prefix = checkpoint_prefix(checkpoint, source)
    stripped = {
        key[len(prefix) :]: value for key, value in checkpoint.items() if key.startswith(prefix)
    }
    stripped, renamed = rename_unilm_keys(stripped)
    unexpected = sorted(
        key for key in stripped if key not in model_state and not key.endswith(DERIVED_BUFFERS)
    )
    other = sorted(key for key in checkpoint if not key.startswith(prefix))
    matched, mismatched = {}, []
    for key, value in stripped.items():
        if key not in model_state:
            continue
        if value.shape != model_state[key].shape:
            mismatched.append((key, tuple(value.shape), tuple(model_state[key].shape)))
        else:
            matched[key] = value
    missing = sorted(k for k in model_state if k not in stripped)
    return StateMatch(prefix, matched, missing, unexpected, mismatched, other, renamed)


def format_report(source, match: StateMatch, new_by_design=()) -> str:
    """One block: what was loaded from where, what is new by design, and every problem."""
    renamed = f"; {match.renamed} keys renamed from unilm's layout" if match.renamed else ""
    lines = [
        f"Loaded {len(match.matched)} tensors from {source} (key prefix '{match.prefix}'{renamed})."
    ]
    if match.other:
        lines.append(
            f"Not LayoutLMv3 weights ({len(match.other)} keys outside the prefix, ignored)."
        )
    if new_by_design:
        lines.append(
            f"New by design ({len(new_by_design)}, initialised here): "
            + summarize_keys(new_by_design)
        )
    if match.missing:
        lines.append(f"Missing in the checkpoint ({len(match.missing)}, left at their init):")
        lines += [f"  {k}" for k in match.missing]
    if match.unexpected:
        lines.append(f"Unexpected in the checkpoint ({len(match.unexpected)}, ignored):")
        lines += [f"  {k}" for k in match.unexpected]
    if match.mismatched:
        lines.append(f"Shape mismatch ({len(match.mismatched)}, left at their init):")
        lines += [f"  {k}: checkpoint {a} vs model {b}" for k, a, b in match.mismatched]
    return "\n".join(lines)


def _module_of(key: str, depth: int = 4) -> str:
    """The module a key belongs to, cut at the first index (``fpn1.1.weight`` → ``fpn1``)."""
    parts = key.split(".")[:-1] or key.split(".")
    for index, part in enumerate(parts):
        if part.isdigit():
            parts = parts[:index]
            break
    return ".".join(parts[:depth])


def summarize_keys(keys) -> str:
    """``module.*`` groups with counts, for long lists of keys that belong together."""
    groups = Counter(_module_of(key) for key in keys)
    return ", ".join(f"{group}.* ({n})" for group, n in sorted(groups.items()))


def load_into(model: torch.nn.Module, checkpoint: dict, source: str, strict: bool = False):
    """Load ``checkpoint`` into ``model`` with prefix mapping; log one report block.

    Returns the :class:`StateMatch`; raises :class:`IncompatibleWeights` in strict mode when
    anything is missing, unexpected or mis-shaped.
    """
    match = match_state_dict(model.state_dict(), checkpoint, source)
    report = format_report(source, match)
    if strict and (match.missing or match.unexpected or match.mismatched):
        raise IncompatibleWeights(report)
    model.load_state_dict(match.matched, strict=False)
    if match.missing or match.unexpected or match.mismatched:
        logger.warning(report)
    else:
        logger.info(report)
    return match


def _read_config(config, weights_path: Path) -> LayoutLMv3Config:
    if isinstance(config, LayoutLMv3Config):
        return config
    if config is None and not (weights_path.parent / "config.json").is_file():
        raise FileNotFoundError(
            f"{weights_path}: no config given and no config.json beside it; pass "
            "config=LayoutLMv3Config(...) or the path of the checkpoint's config.json"
        )
    return read_config(config if config is not None else weights_path.parent)


def load_pretrained(cls, path, config=None, strict: bool = False, **model_kwargs):
    """Build ``cls(config, **model_kwargs)`` and load weights from ``path`` (see
    ``LayoutLMv3DetectionModel.from_pretrained``)."""
    path = Path(path)
    weights = find_weights_file(path) if path.is_dir() else path
    config = _read_config(config, weights)
    model = cls(config, **model_kwargs)
    load_into(model, load_state_dict(weights), str(weights), strict=strict)
    return model
