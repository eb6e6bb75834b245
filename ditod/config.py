"""Config keys of the LayoutLMv3 detector, added to detectron2's defaults. Importing this module
registers the detector's parts (:mod:`ditod.modeling`), which the keys name."""

import difflib
from pathlib import Path

import yaml
from detectron2.config import CfgNode as CN

from . import modeling as _  # noqa: F401  (registers the backbone and meta-architecture)

__all__ = [
    "ConfigError",
    "add_layoutlmv3_config",
    "load_config",
    "merge_config_file",
    "merge_options",
]

BASE_KEY = "_BASE_"


class ConfigError(KeyError):
    """A config file or override names a key the configuration does not have."""

    def __str__(self) -> str:
        return str(self.args[0])


def _keys(node, prefix: str = "") -> list[str]:
    keys = []
    for name, value in node.items():
        keys += _keys(value, f"{prefix}{name}.") if isinstance(value, dict) else [prefix + name]
    return keys


def _unknown_key_message(key: str, known: list[str]) -> str:
    close = difflib.get_close_matches(key, known, n=3, cutoff=0.8)
    return f"unknown config key {key}" + (f" (did you mean {' or '.join(close)}?)" if close else "")


def merge_options(cfg: CN, opts: list) -> None:
    """``cfg.merge_from_list(opts)`` (command-line ``KEY VALUE`` pairs); an unknown key raises
    :class:`ConfigError` naming it and the closest known keys."""
    known = _keys(cfg)
    for key in opts[0::2]:
        if key not in known:
            raise ConfigError(_unknown_key_message(key, known))
    cfg.merge_from_list(opts)


def _check_file_keys(path: Path, known: list[str]) -> None:
    """Every key of ``path`` and of its ``_BASE_`` chain is known, else :class:`ConfigError`
    naming the file that has the unknown one."""
    if not path.is_file():
        raise FileNotFoundError(f"config file {path} does not exist")
    with open(path, encoding="utf-8") as f:
        try:
            values = yaml.safe_load(f) or {}
        except yaml.YAMLError as error:
            raise ConfigError(f"{path}: not valid YAML ({error})") from None
    if not isinstance(values, dict):
        raise ConfigError(
            f"{path}: a config file is a mapping of keys, not {type(values).__name__}"
        )
    base = values.pop(BASE_KEY, None)
    if base:
        base = Path(base).expanduser()
        _check_file_keys(base if base.is_absolute() else path.parent / base, known)
    for key in _keys(values):
        if key not in known and not any(key.startswith(k + ".") for k in known):
            raise ConfigError(f"{path}: {_unknown_key_message(key, known)}")


def merge_config_file(cfg: CN, path) -> None:
    """``cfg.merge_from_file(path)``, but an unknown key (a typo) raises :class:`ConfigError`
    naming the file (of the ``_BASE_`` chain) that has it and the closest known keys, and a
    missing file a ``FileNotFoundError`` naming it."""
    _check_file_keys(Path(path), _keys(cfg))
    cfg.merge_from_file(str(path))


def load_config(config_file, opts=()) -> CN:
    """detectron2's defaults + this project's keys + ``config_file`` + ``KEY VALUE`` ``opts``,
    each unknown key an error naming its file (or the command line) and the closest keys."""
    from detectron2.config import get_cfg

    cfg = get_cfg()
    add_layoutlmv3_config(cfg)
    merge_config_file(cfg, config_file)
    merge_options(cfg, list(opts))
    return cfg


def add_layoutlmv3_config(cfg: CN) -> None:
    """Add the keys this project reads to ``cfg`` (in place); every one has a working default."""
    _C = cfg

    _C.MODEL.LAYOUTLMV3 = CN()
    # A config.json (or the folder holding one, e.g. a hub download). Empty: the SIZE preset.
    _C.MODEL.LAYOUTLMV3.CONFIG = ""
    # Preset when CONFIG is empty: "base", "base-chinese", "large" or "tiny" (tests and the demo).
    _C.MODEL.LAYOUTLMV3.SIZE = "base"
    # Pyramid taps (0-based layer names) for strides 4, 8, 16 and 32.
    _C.MODEL.LAYOUTLMV3.OUT_FEATURES = ["layer3", "layer5", "layer7", "layer11"]
    # True: image-only detector, OCR text is neither read nor passed to the model.
    _C.MODEL.LAYOUTLMV3.IMAGE_ONLY = True
    _C.MODEL.LAYOUTLMV3.DROP_PATH = 0.1
    # Dropout on the attention probabilities in training; -1: the CONFIG's / preset's (0.1 in
    # the hub's, unilm's recipe). On CPU in fp32 any dropout here sends attention to PyTorch's
    # unfused path (0 makes a base step 2.2x faster); bf16 runs it through blocked attention
    # (ATTENTION_QUERY_BLOCK) at near the no-dropout speed (benchmarks/training_precision.py).
    _C.MODEL.LAYOUTLMV3.ATTENTION_DROPOUT = -1.0
    # The transformer's attention where it runs in bf16 (TEST.PRECISION bf16, SOLVER.AMP bf16):
    # -1 = a probe at start picks PyTorch's fused attention or blocks of 64 queries through bf16
    # matmuls (layoutlmv3.blocked_attention; on CPUs without AMX 2x the fused kernel, and with
    # attention dropout, which the fused CPU kernel lacks, a base training step 2.3x); 0 = always
    # the fused kernel; N > 0 = blocks of N queries.
    _C.MODEL.LAYOUTLMV3.ATTENTION_QUERY_BLOCK = -1
    _C.MODEL.LAYOUTLMV3.GRADIENT_CHECKPOINTING = False
    # Relative 1-D / spatial 2-D attention biases (unilm turns them off for detection).
    _C.MODEL.LAYOUTLMV3.RELATIVE_ATTENTION_BIAS = False
    _C.MODEL.LAYOUTLMV3.SPATIAL_ATTENTION_BIAS = False
    # Fail when MODEL.WEIGHTS does not fit the model (missing, unexpected or mis-shaped keys).
    _C.MODEL.LAYOUTLMV3.STRICT_WEIGHTS = False
    # Evaluation, inference and export refuse MODEL.WEIGHTS that leave any model tensor at its
    # random init (missing, mis-shaped, a head on a pretrained backbone, an empty MODEL.WEIGHTS).
    # True runs them anyway (e.g. to measure an untrained baseline).
    _C.MODEL.LAYOUTLMV3.ALLOW_RANDOM_INIT = False
    # A checkpoint trained on classes named otherwise than the dataset's: [[checkpoint class,
    # dataset class], ...]. Classes not listed match by name; in training, dataset classes the
    # checkpoint lacks start from a fresh classifier row. Empty: the names must be equal.
    _C.MODEL.CLASS_MAPPING = []

    _C.MODEL.LAYOUTLMV3.TEXT = CN()
    # Folder of a transformers tokenizer (the hub folder of the pretrained weights).
    _C.MODEL.LAYOUTLMV3.TEXT.TOKENIZER = ""
    # Keep the first k tokens of each OCR segment (0 = all; 3 is the CDLA ablation's "WE-F3").
    _C.MODEL.LAYOUTLMV3.TEXT.TOKENS_PER_SEGMENT = 0
    # Drop a lone leading "▁" piece of a segment (XLM-R tokenizers).
    _C.MODEL.LAYOUTLMV3.TEXT.DROP_LEADING_SPACE = False
    _C.MODEL.LAYOUTLMV3.TEXT.DROP_UNKNOWN = False
    # Text tokens per page, <s> and </s> not counted (at most 510).
    _C.MODEL.LAYOUTLMV3.TEXT.MAX_TOKENS = 300
    # Order of OCR segments before the token cap: "ocr" (as returned) or "columns" (one- vs
    # two-column pages detected, left column top to bottom before the right one).
    _C.MODEL.LAYOUTLMV3.TEXT.READING_ORDER = "ocr"
    # A page over MAX_TOKENS keeps: "end" (its tokens in reading order up to the cap; the last
    # lines get no text) or "lines" (every line its first tokens, as many a line as the cap
    # allows; one token of evenly spaced lines when the page has more lines than the cap).
    _C.MODEL.LAYOUTLMV3.TEXT.TRUNCATION = "end"
    # Training only: move each edge of each OCR segment's box by up to this fraction of the
    # segment's height (uniform), so that a model trained on one source of boxes (PDF text, the
    # generator's ink boxes, one OCR engine) is not thrown by another's at inference. 0: off.
    _C.MODEL.LAYOUTLMV3.TEXT.BOX_JITTER = 0.0
    # Training only: about this share of the OCR's words get an OCR engine's errors (split,
    # run together, characters misread or dropped: ditod.data.ocr_noise), for a model trained
    # on exact text (a generator's, a PDF's) that meets an engine's at inference. 0: off.
    _C.MODEL.LAYOUTLMV3.TEXT.OCR_NOISE = 0.0
    # A page without OCR JSON: "error", or "image_only" (no text for it, counted and logged).
    _C.MODEL.LAYOUTLMV3.TEXT.MISSING_OCR = "error"

    _C.MODEL.LAYOUTLMV3.FUSION = CN()
    # "" (none), "add", "gated" (g * map + (1 - g) * text), "gated_add"
    # (map + g * text: the image whole, the text gated), "concat", or a fusion of the user's
    # (ditod.modeling.register_fusion).
    _C.MODEL.LAYOUTLMV3.FUSION.TYPE = ""
    _C.MODEL.LAYOUTLMV3.FUSION.LAYERS = ["layer11"]
    # A map cell's text: "sum" or "mean" of the tokens covering it (summed, a stride-32 cell of
    # 5-6 lines outweighs its image features ~20x).
    _C.MODEL.LAYOUTLMV3.FUSION.REDUCE = "sum"
    # "gated": the gate's initial bias. 0: it starts keeping ~0.5 of the image in every cell
    # (with stride-4 fusion, the finest map's image halved); 2: ~0.88 of the image.
    # "gated_add": 0 starts adding ~0.5 of the text.
    _C.MODEL.LAYOUTLMV3.FUSION.GATE_BIAS = 0.0
    # SE: one text feature per OCR segment (the mean of its tokens) instead of one per token.
    _C.MODEL.LAYOUTLMV3.FUSION.SEGMENTS = False
    # Text at the box head: the first FUSION.LAYERS' text map pooled over each box with the
    # image features' RoIAlign and added to them (needs MODEL.ROI_HEADS.NAME
    # "LayoutCascadeROIHeads"; with or without FUSION.TYPE).
    _C.MODEL.LAYOUTLMV3.FUSION.BOX_HEAD = False

    # Relation module (RM) after the cascade: self-attention over a page's boxes (their last
    # stage's box-head features + box geometry) refines that stage's class scores and box deltas,
    # trained jointly. LAYERS 0: off. Needs MODEL.ROI_HEADS.NAME "LayoutCascadeROIHeads".
    _C.MODEL.RELATION = CN()
    _C.MODEL.RELATION.LAYERS = 0
    _C.MODEL.RELATION.DIM = 256
    _C.MODEL.RELATION.HEADS = 8

    # Multi-process training: seconds a collective may wait for a peer (a dead rank ends the
    # others within this; under gloo sooner, when its socket closes).
    _C.DISTRIBUTED = CN()
    _C.DISTRIBUTED.TIMEOUT_SECONDS = 1800
    # "" (NCCL for a CUDA MODEL.DEVICE, gloo for cpu), "nccl" or "gloo" (gloo on CUDA: under
    # torchrun or srun only).
    _C.DISTRIBUTED.BACKEND = ""

    # Data root of the built-in datasets (publaynet_*, cdla_*, doclaynet_*); the environment
    # variable DITOD_DATASETS wins when this is empty.
    _C.DATASETS.ROOT = ""
    # Extra COCO datasets: a list of [name, json_file, image_root, ocr_root] ("" = sibling OCR/).
    _C.DATASETS.EXTRA = []

    # Inference and --eval-only arithmetic (ditod.modeling.precision): auto | fp32 | bf16 | int8.
    # auto: bf16 on a GPU that has it and on CPUs with AMX / AVX512-BF16, int8 on CPUs with VNNI
    # but no bf16, else fp32 (one log line says which and why). Evaluation during training: fp32.
    _C.TEST.PRECISION = "auto"
    # Under bf16, the modules that compute (and hand on their maps) in fp32: the FPN's output
    # convolutions. In bf16 their maps cost the demo model 7 AP (86.8 -> 79.7); in fp32, none.
    _C.TEST.FP32_MODULES = [f"backbone.fpn_output{level}" for level in (2, 3, 4, 5)]
    # Under int8, the attention between the int8 linear layers: auto | bf16 | fp32. auto: bf16
    # where the CPU has bf16 matrix units (probed; blocks as ATTENTION_QUERY_BLOCK says), else fp32.
    # On an AVX512-BF16 CPU bf16 attention takes half fp32's time (benchmarks/precision.py).
    _C.TEST.INT8_ATTENTION = "auto"

    # Layout post-processing of detections (ditod.modeling.layout_postprocess), in evaluation
    # and inference alike; 0 / empty: off.
    _C.TEST.LAYOUT = CN()
    # One score threshold per class (model order), on top of MODEL.ROI_HEADS.SCORE_THRESH_TEST.
    _C.TEST.LAYOUT.SCORE_THRESHOLDS = []
    # A box covered by at least this fraction of its area by a larger box of another class goes.
    _C.TEST.LAYOUT.CONTAINED = 0.0
    # Of two boxes of different classes with a larger IoU, the lower-scoring one goes.
    _C.TEST.LAYOUT.CROSS_CLASS_IOU = 0.0
    # tools/infer.py: each caption region moved into its figure/table region in the JSON.
    _C.TEST.LAYOUT.MERGE_CAPTIONS = False

    # DETR-style augmentation: with probability 1/2, resize to a short side of 400/500/600 and
    # crop 384..600 before the usual ResizeShortestEdge.
    _C.AUG = CN()
    _C.AUG.DETR = False

    _C.SOLVER.OPTIMIZER = "ADAMW"
    _C.SOLVER.BETAS = (0.9, 0.999)
    # LR multiplier of the LayoutLMv3 backbone's parameters.
    _C.SOLVER.BACKBONE_MULTIPLIER = 1.0
    # Layer-wise LR decay of the transformer (1.0 = off): layer i gets decay ** (depth - i).
    _C.SOLVER.LAYER_DECAY = 1.0
    # Micro-batches per optimizer step; an iteration (MAX_ITER, LR schedule) is one step.
    _C.SOLVER.ACCUMULATION_STEPS = 1
    # "float16" (CUDA, with a GradScaler) or "bfloat16" (CUDA or CPU).
    _C.SOLVER.AMP.DTYPE = "float16"
    # SOLVER.CLIP_GRADIENTS.CLIP_TYPE also takes "full_model": one norm over all gradients.
