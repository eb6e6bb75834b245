"""RapidOCR: PP-OCR models in ONNX, shipped in the wheel (offline); the default engine."""

import functools
from types import SimpleNamespace

import numpy as np

from ..cjk import is_cjk_text
from ..first_tokens import (
    cjk_prefix_width,
    cjk_prefix_widths,
    first_characters,
    first_tokens_read,
    first_words,
    looks_cjk,
    prefix_widths,
)
from .base import EngineUnavailable, package_version, register_engine, text_line

__all__ = ["RapidOCREngine"]

# Narrowest recogniser input (pixels at its 48-pixel height) in first-token mode, for line
# starts and for lines recognised whole (measured on PubLayNet: benchmarks/ocr_first_tokens.py).
PREFIX_MIN_WIDTH = 64
LINE_MIN_WIDTH = 192
_NO_TEXT = SimpleNamespace(txts=(), scores=())


def _line_start_cuts(crop: np.ndarray, k: int, tokenize=None) -> tuple[list, int]:
    """``(width, reader)`` of the line starts to try, in order — at word gaps
    (``first_words``), then, for a long line, at the width of k CJK tokens: the bound
    (``first_characters``) or, given ``tokenize`` (text → pieces), from narrow to that bound,
    each read verified (``first_tokens_read``) — and the index of the first CJK cut (the cuts
    tried once a read shows CJK text)."""
    cuts = [(width, first_words) for width in prefix_widths(crop, k)]
    if tokenize is None:
        width = cjk_prefix_width(crop, k)
        cjk = [] if width is None else [(width, first_characters)]
    else:
        reader = functools.partial(first_tokens_read, tokenize=tokenize)
        cjk = [(width, reader) for width in cjk_prefix_widths(crop, k)]
    if not cjk:
        return cuts, len(cuts)
    if looks_cjk(crop):
        return cjk, 0
    return [*cuts, *cjk], len(cuts)


@register_engine
class RapidOCREngine:
    """RapidOCR's detection, angle classification and recognition.

    Args:
        first_tokens: k > 0 recognises only the start of each line, enough for its first k
            tokens (see :mod:`..first_tokens`); its lines' text is then their first k words.
        tokenizer: with ``first_tokens``, the model's tokenizer (a transformers folder, as
            ``MODEL.LAYOUTLMV3.TEXT.TOKENIZER``): CJK lines are cut where their first k tokens
            end, each read tokenized to check, instead of at 3 characters a token.
        threads: onnxruntime intra-op threads of each model (-1: onnxruntime's default).
    """

    name = "rapidocr"
    supports_first_tokens = True

    def __init__(
        self,
        use_angle_cls: bool = True,
        threads: int = -1,
        first_tokens: int = 0,
        tokenizer: str = "",
        **_,
    ):
        try:
            from rapidocr import RapidOCR
        except ImportError as error:
            raise EngineUnavailable(
                "rapidocr is not installed: pip install 'layoutlmv3-ditod[ocr]' "
                "(rapidocr + onnxruntime)"
            ) from error
        if first_tokens < 0:
            raise ValueError(f"first_tokens must be >= 0 (0: whole lines), got {first_tokens}")
        # RapidOCR logs each model file it loads at INFO, per process, from its own handler
        params = {"Global.log_level": "warning"}
        if threads > 0:
            params["EngineConfig.onnxruntime.intra_op_num_threads"] = threads
        self.engine = RapidOCR(params=params)
        self.use_angle_cls = use_angle_cls
        self.first_tokens = first_tokens
        self.tokenizer = str(tokenizer)
        self._tokenize = None
        if tokenizer:
            from transformers import AutoTokenizer

            self._tokenize = AutoTokenizer.from_pretrained(str(tokenizer)).tokenize
        self.version = package_version("rapidocr")

    def __call__(self, image: np.ndarray) -> list:
        if self.first_tokens:
            return self._line_starts(image)
        result = self.engine(image, use_cls=self.use_angle_cls)
        if result.boxes is None or result.txts is None:
            return []
        return [text_line(p, t, s) for p, t, s in zip(result.boxes, result.txts, result.scores)]

    def _line_starts(self, image: np.ndarray) -> list:
        """RapidOCR's detection, angle classification and recognition steps, with each line
        recognised only up to a little past its (k+1)-th word."""
        from rapidocr.main import RapidOCRError
        from rapidocr.utils.process_img import map_boxes_to_original

        ocr, k = self.engine, self.first_tokens
        resized, record = ocr.preprocess_img(image)
        try:
            crops, detected = ocr.detect_and_crop(resized, record)
            if self.use_angle_cls:
                crops, _ = ocr.cls_and_rotate(crops)
        except RapidOCRError:
            return []
        texts, scores = [None] * len(crops), [0.0] * len(crops)
        planned = [_line_start_cuts(crop, k, self._tokenize) for crop in crops]
        cuts, first_cjk = [plan[0] for plan in planned], [plan[1] for plan in planned]
        tried = [0] * len(crops)  # each line's next cut
        while lines := [
            i for i, text in enumerate(texts) if text is None and tried[i] < len(cuts[i])
        ]:
            prefixes = [crops[i][:, : cuts[i][tried[i]][0]] for i in lines]
            starts = self._recognize(prefixes, PREFIX_MIN_WIDTH)
            for i, text, score in zip(lines, starts.txts, starts.scores):
                reader = cuts[i][tried[i]][1]
                texts[i], scores[i] = reader(text, k), score
                tried[i] += 1
                if reader is first_words and is_cjk_text(text):  # its glyph gaps are no word
                    tried[i] = max(tried[i], first_cjk[i])  # gaps: on to the CJK cuts
        whole = [i for i, text in enumerate(texts) if text is None]
        if whole:
            lines = self._recognize([crops[i] for i in whole], LINE_MIN_WIDTH)
            for i, text, score in zip(whole, lines.txts, lines.scores):
                texts[i], scores[i] = text, score
        boxes = map_boxes_to_original(detected.boxes, record, *image.shape[:2])
        found = zip(boxes, texts, scores)
        return [
            text_line(box, text, score)
            for box, text, score in found
            if text.strip() and score >= ocr.text_score
        ]

    def _recognize(self, crops: list, min_width: int):
        """Recognise ``crops`` padded to at least ``min_width`` pixels at the recogniser's
        height (RapidOCR pads every crop to 320: most of the cost of a short crop)."""
        recognizer = self.engine._load_rec_model()
        shape = recognizer.rec_image_shape
        recognizer.rec_image_shape = [*shape[:2], min_width]
        try:
            return self.engine.recognize_txt(crops) if crops else _NO_TEXT
        finally:
            recognizer.rec_image_shape = shape
