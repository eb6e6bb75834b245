"""Dataset mapper: page image + annotations + OCR text → model inputs."""

import copy
import logging
from collections import OrderedDict
from types import SimpleNamespace

import numpy as np
import torch
from detectron2.config import configurable
from detectron2.data import DatasetMapper
from detectron2.data import detection_utils as utils
from detectron2.data import transforms as T

from layoutlmv3 import EncodedPage, OCRPageTokenizer
from layoutlmv3.tokenization import FirstTokensMismatch

from ..modeling.backbone import build_layoutlmv3_config
from ..pages.image_io import page_size, read_page_image
from ..pages.ocr_json import ocr_json_problem, read_ocr_json
from .ocr_noise import with_ocr_noise

__all__ = ["LayoutDatasetMapper", "build_page_tokenizer", "jitter_boxes"]

logger = logging.getLogger(__name__)

MISSING_OCR_POLICIES = ("error", "image_only")


def build_page_tokenizer(cfg) -> OCRPageTokenizer | None:
    """The OCR-page tokenizer of ``MODEL.LAYOUTLMV3.TEXT``; None for image-only models."""
    if cfg.MODEL.LAYOUTLMV3.IMAGE_ONLY:
        return None
    text = cfg.MODEL.LAYOUTLMV3.TEXT
    if not text.TOKENIZER:
        raise ValueError(
            "MODEL.LAYOUTLMV3.TEXT.TOKENIZER is empty but the model reads text "
            "(MODEL.LAYOUTLMV3.IMAGE_ONLY False): set it to the folder of the pretrained "
            "checkpoint's tokenizer, e.g. a local copy of microsoft/layoutlmv3-base"
        )
    tokenizer = OCRPageTokenizer(
        text.TOKENIZER,
        tokens_per_segment=text.TOKENS_PER_SEGMENT,
        drop_leading_space=text.DROP_LEADING_SPACE,
        drop_unknown=text.DROP_UNKNOWN,
        max_tokens=text.MAX_TOKENS,
        reading_order=text.READING_ORDER,
        truncation=text.TRUNCATION,
    )
    node = cfg.MODEL.LAYOUTLMV3
    model = f"MODEL.LAYOUTLMV3.CONFIG {node.CONFIG}" if node.CONFIG else f"SIZE {node.SIZE}"
    tokenizer.check_vocab_size(
        build_layoutlmv3_config(cfg).vocab_size, source=f"the model ({model})"
    )
    return tokenizer


def build_layout_augmentation(cfg, is_train: bool) -> list:
    """detectron2's resize (+ flip) augmentation; in training with ``AUG.DETR`` the DETR-style
    resize-crop-resize half of the time."""
    augmentations = utils.build_augmentation(cfg, is_train)
    if is_train and cfg.AUG.DETR:
        resize_crop = T.AugmentationList(
            [
                T.ResizeShortestEdge([400, 500, 600], sample_style="choice"),
                T.RandomCrop("absolute_range", (384, 600)),
            ]
        )
        augmentations.insert(0, T.RandomApply(resize_crop, prob=0.5))
    return augmentations


def jitter_boxes(boxes: np.ndarray, fraction: float, rng=np.random) -> np.ndarray:
    """(S, 4) ``x0, y0, x1, y1`` boxes with each edge moved by uniform noise in
    ±``fraction`` × the box's smaller side (a text line's height: the scale by which OCR engines'
    boxes of one line differ). A box never turns over: it keeps at least a tenth of its size.
    ``rng``: anything with numpy's ``uniform(low, high, size)``."""
    sizes = boxes[:, 2:] - boxes[:, :2]
    line_heights = sizes.min(axis=1, keepdims=True)
    moved = boxes + rng.uniform(-fraction, fraction, size=boxes.shape) * line_heights
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2
    low = np.minimum(moved[:, :2], centre - 0.05 * sizes)
    high = np.maximum(moved[:, 2:], centre + 0.05 * sizes)
    return np.concatenate([low, high], axis=1)


class LayoutDatasetMapper(DatasetMapper):
    """``DatasetMapper`` that also turns the page's OCR JSON (``dataset_dict["ocr_file"]``) into
    text tokens whose boxes follow the image through every augmentation.

    Adds to each mapped dict ``input_ids`` (L,) and ``bbox`` (L, 4) in 0..1000 of the augmented,
    unpadded image; segments cropped out of the image are dropped before the page's token cap.
    Tokens are cached per worker process in an LRU cache of ``cache_size`` pages: a dataset
    within that size is tokenized once per worker, a larger one re-tokenizes the pages that fell
    out of the cache (on PubLayNet's 335k pages, every epoch); augmentations only move boxes.

    Args:
        tokenizer: OCR-page tokenizer, or None for an image-only model (no text read).
        missing_ocr: "error", or "image_only" to give a page whose OCR JSON is missing or
            unreadable no text (counted, logged).
        box_jitter: in training, move each edge of each segment's box by uniform noise of up
            to this fraction of the segment's height (0: off; see :func:`jitter_boxes`).
        ocr_noise: in training, about this share of the words get OCR-like errors, drawn anew
            each time a page is read (0: off; :func:`~ditod.data.ocr_noise.ocr_noise`); the
            page's OCR JSON is cached instead of its tokens.
        cache_size: pages whose tokens are kept per process.
        read_min_side: at test time, a page whose shorter side is over this is decoded reduced
            by an integer factor, its shorter side still >= this (the detector resizes it to
            ``INPUT.MIN_SIZE_TEST`` anyway; default 4 times that, where the detections equal
            those of a full read): a 600-dpi scan costs the memory of a 150-dpi one.
            Detections are in the pixels of the full page.
    """

    @configurable
    def __init__(
        self,
        is_train: bool = True,
        *,
        tokenizer: OCRPageTokenizer | None = None,
        missing_ocr: str = "error",
        box_jitter: float = 0.0,
        ocr_noise: float = 0.0,
        cache_size: int = 20000,
        read_min_side: int | None = None,
        **kwargs,
    ):
        super().__init__(is_train, **kwargs)
        if missing_ocr not in MISSING_OCR_POLICIES:
            raise ValueError(
                f"MODEL.LAYOUTLMV3.TEXT.MISSING_OCR must be one of {MISSING_OCR_POLICIES}, "
                f"got '{missing_ocr}'"
            )
        if not 0 <= box_jitter < 1:
            raise ValueError(
                f"MODEL.LAYOUTLMV3.TEXT.BOX_JITTER must be in [0, 1), got {box_jitter}"
            )
        self.box_jitter = box_jitter if is_train else 0.0
        if not 0 <= ocr_noise < 1:
            raise ValueError(f"MODEL.LAYOUTLMV3.TEXT.OCR_NOISE must be in [0, 1), got {ocr_noise}")
        self.ocr_noise = ocr_noise if is_train else 0.0
        self.tokenizer = tokenizer
        self.missing_ocr = missing_ocr
        self.cache_size = cache_size
        self.read_min_side = None if is_train else read_min_side
        self._segments_cache = OrderedDict()
        self.pages_without_ocr = 0
        self.unreadable_pages = 0

    @classmethod
    def from_config(cls, cfg, is_train: bool = True):
        config = super().from_config(cfg, is_train)
        config["augmentations"] = build_layout_augmentation(cfg, is_train)
        if is_train and cfg.INPUT.CROP.ENABLED:
            crop = T.RandomCrop(cfg.INPUT.CROP.TYPE, cfg.INPUT.CROP.SIZE)
            config["augmentations"].insert(0, crop)
        config["tokenizer"] = build_page_tokenizer(cfg)
        config["missing_ocr"] = cfg.MODEL.LAYOUTLMV3.TEXT.MISSING_OCR
        config["box_jitter"] = cfg.MODEL.LAYOUTLMV3.TEXT.BOX_JITTER
        config["ocr_noise"] = cfg.MODEL.LAYOUTLMV3.TEXT.OCR_NOISE
        config["read_min_side"] = 4 * cfg.INPUT.MIN_SIZE_TEST
        return config

    def _page_segments(self, dataset_dict):
        """Per-segment tokens of the page (cached by OCR file), or None when it has no usable
        OCR. The page's text is its ``ocr_file``, or an ``ocr_page`` dict given in memory. With
        ``ocr_noise``, the page's OCR is cached (checked by tokenizing it once) and each call
        tokenizes a fresh noisy copy."""
        path = dataset_dict.get("ocr_file")
        if path in self._segments_cache:
            self._segments_cache.move_to_end(path)
            cached = self._segments_cache[path]
        else:
            cached = self._read_segments(dataset_dict, path)
            if path:
                self._segments_cache[path] = cached
                if len(self._segments_cache) > self.cache_size:
                    self._segments_cache.popitem(last=False)
        if not self.ocr_noise or cached is None:
            return cached
        page, source = cached  # the global numpy RNG, as the box jitter
        first = self.tokenizer.tokens_per_segment
        noisy = with_ocr_noise(page, self.ocr_noise, np.random, first + 2 if first else None)
        return self.tokenizer.tokenize_segments(noisy, source=source)

    def _read_segments(self, dataset_dict, path):
        """The page's tokens (with ``ocr_noise``: its OCR dict and name, once tokenized to check
        it), or None by the ``missing_ocr`` policy."""
        try:
            if "ocr_page" in dataset_dict:
                page, source = dataset_dict["ocr_page"], f"OCR of {dataset_dict['file_name']}"
                if problem := ocr_json_problem(page):
                    raise ValueError(f"{source}: OCR JSON {problem}")
            elif not path:
                raise FileNotFoundError(f"{dataset_dict['file_name']}: no OCR file registered")
            else:
                page, source = read_ocr_json(path), str(path)
            segments = self.tokenizer.tokenize_segments(page, source=source)
        except FirstTokensMismatch:
            raise  # the OCR and the config do not belong together: no page is image-only here
        except (OSError, ValueError) as error:
            if self.missing_ocr == "error":
                raise type(error)(
                    f"{error} [page {dataset_dict['file_name']}; run the OCR preprocessing "
                    "for it, or set MODEL.LAYOUTLMV3.TEXT.MISSING_OCR image_only]"
                ) from error
            self.pages_without_ocr += 1
            log = logger.warning if self.pages_without_ocr <= 10 else logger.debug
            log("page without text (%d so far in this process): %s", self.pages_without_ocr, error)
            return None
        return (page, source) if self.ocr_noise else segments

    def page_text(self, segments, transforms, original_hw, augmented_hw) -> EncodedPage:
        """Tokens of the page's ``segments`` with boxes moved by ``transforms`` and normalised
        to 0..1000 of the augmented image ``augmented_hw``."""
        if segments is None or not segments.ids:
            return self.tokenizer.encode([], [])
        height, width = original_hw
        scale = np.array([width / segments.width, height / segments.height] * 2)
        boxes = segments.boxes * scale
        if self.box_jitter:  # the global numpy RNG: seeded per worker, saved on resume
            boxes = jitter_boxes(boxes, self.box_jitter, np.random)
        boxes = transforms.apply_box(boxes)
        height, width = augmented_hw
        inside = (
            (boxes[:, 0] < width) & (boxes[:, 2] > 0) & (boxes[:, 1] < height) & (boxes[:, 3] > 0)
        )
        size = np.array([width, height, width, height], dtype=np.float64)
        normalized = np.clip(np.round(np.clip(boxes, 0, size) / size * 1000), 0, 1000)
        kept = np.flatnonzero(inside)
        return self.tokenizer.encode([segments.ids[i] for i in kept], normalized[kept])

    @staticmethod
    def text_status(segments, text: EncodedPage) -> dict:
        """What became of the page's OCR text: ``segments`` in its JSON, ``dropped`` of them
        (unusable box or text), ``tokens`` of the rest and ``tokens_kept`` under the page cap."""
        if segments is None:
            return {"segments": 0, "dropped": 0, "tokens": 0, "tokens_kept": 0}
        kept = max(len(text.input_ids) - 2, 0)
        return {
            "segments": segments.segments,
            "dropped": sum(segments.dropped.values()),
            "tokens": kept + text.tokens_cut,
            "tokens_kept": kept,
        }

    def _read_image(self, dataset_dict) -> np.ndarray:
        """The page (reduced where the test-time read allows), its size checked against the
        dataset's."""
        file_name = dataset_dict["file_name"]
        if self.read_min_side:
            image = read_page_image(file_name, self.image_format, min_side=self.read_min_side)
            width, height = page_size(file_name)
            utils.check_image_size(dataset_dict, SimpleNamespace(shape=(height, width)))
        else:
            image = read_page_image(file_name, format=self.image_format)
            utils.check_image_size(dataset_dict, image)
        return image

    def __call__(self, dataset_dict):
        """A detectron2 dataset dict → ``{"image", "instances", "input_ids", "bbox", ...}``."""
        dataset_dict = copy.deepcopy(dataset_dict)
        try:
            image = self._read_image(dataset_dict)
        except (OSError, ValueError) as error:
            if not self.is_train:
                raise
            # one unreadable page must not end a training run: detectron2 draws another
            self.unreadable_pages += 1
            log = logger.warning if self.unreadable_pages <= 10 else logger.debug
            log("skipped a training page (%d so far in this process): %s", self.unreadable_pages,
                error)  # fmt: skip
            return None
        original_hw = image.shape[:2]  # the OCR boxes are scaled to the image as read

        aug_input = T.AugInput(image)
        transforms = self.augmentations(aug_input)
        image = aug_input.image
        augmented_hw = image.shape[:2]
        dataset_dict["image"] = torch.as_tensor(np.ascontiguousarray(image.transpose(2, 0, 1)))

        if self.tokenizer is not None:
            segments = self._page_segments(dataset_dict)
            text = self.page_text(segments, transforms, original_hw, augmented_hw)
            dataset_dict["input_ids"] = text.input_ids
            dataset_dict["bbox"] = text.bbox
            if not self.is_train:
                dataset_dict["text_status"] = self.text_status(segments, text)
        dataset_dict.pop("ocr_page", None)

        if not self.is_train:
            dataset_dict.pop("annotations", None)
            return dataset_dict
        if "annotations" in dataset_dict:
            self._transform_annotations(dataset_dict, transforms, augmented_hw)
        return dataset_dict
