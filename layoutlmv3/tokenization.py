"""OCR page → LayoutLMv3 text tokens with segment-level boxes.

A page is the OCR JSON the preprocessing step writes: ``{"bbox": [[x, y, w, h], ...],
"words": [...], "W": width, "H": height}``, one entry per text segment (line). Every token of a
segment carries the segment's box, normalised to 0..1000 of the page.
"""

import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from .reading_order import READING_ORDERS, column_reading_order
from .segments import describe_drops, usable_segments

TRUNCATIONS = ("end", "lines")  # what a page over the token cap keeps (OCRPageTokenizer)

__all__ = [
    "EncodedPage",
    "FirstTokensMismatch",
    "OCRPageTokenizer",
    "TokenizedSegments",
    "normalize_box",
    "train_bpe_tokenizer",
    "train_sentencepiece_tokenizer",
]

logger = logging.getLogger(__name__)

SPIECE_UNDERLINE = "▁"
MAX_TEXT_TOKENS = 510  # 512 positions less <s> and </s>


def train_bpe_tokenizer(texts, folder, vocab_size: int, min_frequency: int = 2) -> Path:
    """Train a byte-level BPE on ``texts`` and save it as a ``LayoutLMv3Tokenizer`` (the
    layoutlmv3-base kind: RoBERTa special tokens, prefix space) in ``folder``; returns ``folder``.
    For pages whose text no downloaded tokenizer covers, and for offline tests and the demo."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import LayoutLMv3Tokenizer

    folder = Path(folder)
    work = folder / "bpe"
    work.mkdir(parents=True, exist_ok=True)
    trainer = ByteLevelBPETokenizer(add_prefix_space=True)
    trainer.train_from_iterator(
        texts,
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"],
        show_progress=False,
    )
    trainer.save_model(str(work))
    tokenizer = LayoutLMv3Tokenizer(vocab=str(work / "vocab.json"), merges=str(work / "merges.txt"))
    tokenizer.save_pretrained(folder)
    return folder


def train_sentencepiece_tokenizer(texts, folder, vocab_size: int) -> Path:
    """Train a sentencepiece unigram model on ``texts`` and save it as the
    layoutlmv3-base-chinese kind of folder (``sentencepiece.bpe.model`` read by
    ``XLMRobertaTokenizer``: ``<s>``, ``<pad>``, ``</s>``, ``<unk>`` first, every segment starting
    with a "▁" piece, often a lone one) in ``folder``; returns ``folder``. For Chinese pages in
    offline tests and the demo; ``vocab_size`` is a ceiling, smaller corpora get fewer pieces."""
    import io

    import sentencepiece as spm

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(texts),
        model_writer=model,
        vocab_size=vocab_size,
        model_type="unigram",
        character_coverage=1.0,
        hard_vocab_limit=False,
        minloglevel=3,
    )
    (folder / "sentencepiece.bpe.model").write_bytes(model.getvalue())
    (folder / "tokenizer_config.json").write_text(
        json.dumps({"tokenizer_class": "XLMRobertaTokenizer"}), encoding="utf-8"
    )
    return folder


def normalize_box(box, width: float, height: float) -> list[int]:
    """``[x, y, w, h]`` in pixels → ``[x0, y0, x1, y1]`` in 0..1000 of the page, clamped, with
    x1 >= x0 and y1 >= y0 (a negative width or height is read as extending the other way)."""
    x, y, w, h = (float(v) for v in box)
    x0, x1 = sorted((x, x + w))
    y0, y1 = sorted((y, y + h))

    def scale(value, size):
        return min(max(round(1000 * value / size), 0), 1000)

    return [scale(x0, width), scale(y0, height), scale(x1, width), scale(y1, height)]


@dataclass
class TokenizedSegments:
    """Token ids of one page's OCR segments, before crops and the page cap.

    Attributes:
        ids: per kept segment, its token ids after the per-segment rules (segments that yield
            no token are dropped).
        boxes: (S, 4) float64 ``x0, y0, x1, y1`` of each kept segment in pixels of the OCR page.
        width, height: the OCR page's ``W`` and ``H``.
        segments: the page's segments, dropped ones included.
        dropped: segments dropped, by reason (see :func:`.segments.usable_segments`).
    """

    ids: list[list[int]]
    boxes: np.ndarray
    width: float
    height: float
    segments: int = 0
    dropped: Counter = field(default_factory=Counter)

    @property
    def tokens(self) -> int:
        """Tokens of the kept segments, before any page cap."""
        return sum(len(ids) for ids in self.ids)


@dataclass
class EncodedPage:
    """Text tokens of one page.

    Attributes:
        input_ids: (L,) ``<s> tokens </s>``, or (0,) for a page without text.
        bbox: (L, 4) token boxes in 0..1000; ``[0, 0, 0, 0]`` for ``<s>`` and ``</s>``.
        attention_mask: (L,) ones.
        dropped_segments: OCR segments dropped for their box or text (see
            :func:`.segments.usable_segments`).
        tokens_cut: tokens past the page cap (``max_tokens``), left out.
    """

    input_ids: torch.Tensor
    bbox: torch.Tensor
    attention_mask: torch.Tensor
    dropped_segments: int = 0
    tokens_cut: int = 0


class FirstTokensMismatch(ValueError):
    """An OCR JSON made by first-token OCR (each line read to its first k tokens) given to a
    tokenizer keeping more tokens per segment: a configuration error, never a missing page."""


class OCRPageTokenizer:
    """Tokenize OCR pages for LayoutLMv3.

    Args:
        tokenizer: a transformers tokenizer (RoBERTa-BPE ``LayoutLMv3Tokenizer`` for
            layoutlmv3-base, XLM-R sentencepiece for layoutlmv3-base-chinese), or the path of a
            local folder holding one.
        tokens_per_segment: keep the first k tokens of each segment (0 = all; 3 is the
            "WE-F3" setting of the LayoutLMv3 CDLA ablation).
        drop_leading_space: drop a lone leading "▁" piece of a segment that has more pieces.
        drop_unknown: drop ``<unk>`` tokens.
        max_tokens: cap on the page's text tokens, ``<s>``/``</s>`` not counted (at most 510).
        reading_order: "ocr" (as the OCR returned the segments) or "columns" (see
            :func:`layoutlmv3.reading_order.column_reading_order`); applied before the caps.
        truncation: what a page over ``max_tokens`` keeps: "end" (the tokens in reading order
            up to the cap; the last lines get no text) or "lines" (every line its first tokens,
            as many a line as the cap allows; evenly spaced lines one token each when the page
            has more lines than the cap).
    """

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase | str | Path,
        tokens_per_segment: int = 0,
        drop_leading_space: bool = False,
        drop_unknown: bool = False,
        max_tokens: int = 300,
        reading_order: str = "ocr",
        truncation: str = "end",
    ):
        if isinstance(tokenizer, str | Path):
            tokenizer = load_tokenizer(tokenizer)
        if not 0 < max_tokens <= MAX_TEXT_TOKENS:
            raise ValueError(f"max_tokens must be in 1..{MAX_TEXT_TOKENS}, got {max_tokens}")
        if tokens_per_segment < 0:
            raise ValueError(f"tokens_per_segment must be >= 0 (0 = all), got {tokens_per_segment}")
        if reading_order not in READING_ORDERS:
            raise ValueError(
                f"reading_order must be one of {READING_ORDERS}, got '{reading_order}'"
            )
        if truncation not in TRUNCATIONS:
            raise ValueError(f"truncation must be one of {TRUNCATIONS}, got '{truncation}'")
        self.tokenizer = tokenizer
        self.truncation = truncation
        self.reading_order = reading_order
        self.tokens_per_segment = tokens_per_segment
        self.drop_leading_space = drop_leading_space
        self.drop_unknown = drop_unknown
        self.max_tokens = max_tokens

    @property
    def pad_token_id(self) -> int:
        return self.tokenizer.pad_token_id

    def check_vocab_size(self, vocab_size: int, source: str = "the model") -> None:
        """Raise if the tokenizer can emit ids the model's embedding table does not have."""
        if len(self.tokenizer) > vocab_size:
            raise ValueError(
                f"tokenizer {self.tokenizer.name_or_path or type(self.tokenizer).__name__} has "
                f"{len(self.tokenizer)} tokens but {source} has a vocabulary of {vocab_size}: "
                "tokenizer and weights do not belong together (layoutlmv3-base uses RoBERTa BPE, "
                "50265; layoutlmv3-base-chinese uses XLM-R sentencepiece, 250002)"
            )

    def segment_ids(self, text: str) -> list[int]:
        """Token ids of one segment after the per-segment rules."""
        pieces = self.tokenizer.tokenize(text)
        if self.drop_leading_space and len(pieces) > 1 and pieces[0] == SPIECE_UNDERLINE:
            pieces = pieces[1:]
        ids = self.tokenizer.convert_tokens_to_ids(pieces)
        if self.drop_unknown:
            ids = [i for i in ids if i != self.tokenizer.unk_token_id]
        if self.tokens_per_segment:
            ids = ids[: self.tokens_per_segment]
        return ids

    def tokenize_segments(self, page: dict, source: str = "page") -> TokenizedSegments:
        """Per-segment token ids of one OCR page dict, in the configured reading order, before
        any crop and the page cap. Segments whose box or text is unusable are dropped and counted
        (one warning per page); ``source`` (e.g. its JSON path) names the page in messages."""
        words, boxes = page.get("words", []), page.get("bbox", [])
        if not isinstance(words, list) or not isinstance(boxes, list):
            raise ValueError(f"{source}: 'words' and 'bbox' must be lists")
        if len(words) != len(boxes):
            raise ValueError(
                f"{source}: 'words' and 'bbox' have different lengths "
                f"({len(words)} vs {len(boxes)})"
            )
        engine = page.get("engine")
        read = engine.get("first_tokens", 0) if isinstance(engine, dict) else 0
        if read and not 0 < self.tokens_per_segment <= read:
            keeps = f"{self.tokens_per_segment}" if self.tokens_per_segment else "all"
            raise FirstTokensMismatch(
                f"{source}: OCR read only the first {read} tokens of each line (first-token "
                f"OCR) but the model keeps {keeps} tokens per segment (TOKENS_PER_SEGMENT): "
                f"OCR again without first-token mode, or set TOKENS_PER_SEGMENT to 1..{read}"
            )
        width, height = page.get("W"), page.get("H")
        if not words:
            return TokenizedSegments([], np.zeros((0, 4)), float(width or 0), float(height or 0))
        if not all(
            isinstance(v, int | float) and not isinstance(v, bool) and v > 0
            for v in (width, height)
        ):
            raise ValueError(f"{source}: page size W={width!r}, H={height!r} is not positive")

        kept, dropped = usable_segments(page)
        if dropped:
            logger.warning("%s: %s", source, describe_drops(dropped, len(words)))
        if self.reading_order == "columns" and kept:
            order = column_reading_order([box for _, box in kept], width)
            kept = [kept[i] for i in order]
        segment_ids, segment_boxes = [], []
        for text, box in kept:
            ids = self.segment_ids(text)
            if ids:
                segment_ids.append(ids)
                segment_boxes.append(box)
        return TokenizedSegments(
            ids=segment_ids,
            boxes=np.asarray(segment_boxes, dtype=np.float64).reshape(-1, 4),
            width=float(width),
            height=float(height),
            segments=len(words),
            dropped=dropped,
        )

    def kept_per_segment(self, lengths: list[int]) -> list[int]:
        """How many of each segment's ``lengths`` tokens the page cap keeps (see
        ``truncation``)."""
        cap = self.max_tokens
        if sum(lengths) <= cap:
            return list(lengths)
        if self.truncation == "end":
            kept, room = [], cap
            for length in lengths:
                kept.append(min(length, room))
                room -= kept[-1]
            return kept
        if len(lengths) > cap:  # one token each of evenly spaced lines
            chosen = set(np.linspace(0, len(lengths) - 1, cap).round().astype(int).tolist())
            return [int(i in chosen) for i in range(len(lengths))]
        per_line = 1  # the most tokens a line such that every line keeps that many
        while sum(min(length, per_line + 1) for length in lengths) <= cap:
            per_line += 1
        kept = [min(length, per_line) for length in lengths]
        room = cap - sum(kept)
        for index, length in enumerate(lengths):  # what is left: one more for the first lines
            if room and length > per_line:
                kept[index] += 1
                room -= 1
        return kept

    def encode(self, segment_ids, segment_boxes) -> EncodedPage:
        """Assemble ``<s> tokens </s>`` from per-segment ids and their (S, 4) boxes already in
        0..1000, keeping the page cap (``truncation``); no segments → an empty page."""
        ids, token_boxes = [], []
        total = sum(len(segment) for segment in segment_ids)
        kept = self.kept_per_segment([len(segment) for segment in segment_ids])
        for segment, box, keep in zip(segment_ids, segment_boxes, kept):
            segment = list(segment)[:keep]
            ids += segment
            token_boxes += [[int(v) for v in box]] * len(segment)
        if not ids:
            empty = torch.zeros(0, dtype=torch.long)
            return EncodedPage(empty, torch.zeros(0, 4, dtype=torch.long), empty)
        if total > len(ids):
            logger.debug("page cut at the token cap: %d of %d tokens kept", len(ids), total)
        special = [0, 0, 0, 0]
        input_ids = [self.tokenizer.cls_token_id, *ids, self.tokenizer.sep_token_id]
        return EncodedPage(
            input_ids=torch.tensor(input_ids),
            bbox=torch.tensor([special, *token_boxes, special]),
            attention_mask=torch.ones(len(input_ids), dtype=torch.long),
            tokens_cut=total - len(ids),
        )

    def __call__(self, page: dict, source: str = "page") -> EncodedPage:
        """Encode one OCR page dict; ``source`` (e.g. its JSON path) names it in errors."""
        segments = self.tokenize_segments(page, source)
        boxes = [
            normalize_box((x0, y0, x1 - x0, y1 - y0), segments.width, segments.height)
            for x0, y0, x1, y1 in segments.boxes
        ]
        encoded = self.encode(segments.ids, boxes)
        encoded.dropped_segments = sum(segments.dropped.values())
        return encoded


def load_tokenizer(path: str | Path) -> PreTrainedTokenizerBase:
    """A tokenizer from a local folder (as downloaded from the hub); never goes online."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(
            f"tokenizer folder {path} does not exist; download microsoft/layoutlmv3-base (or "
            "-base-chinese) to a local folder and point MODEL.LAYOUTLMV3.TEXT.TOKENIZER at it"
        )
    try:
        return AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    except (OSError, ValueError) as error:
        raise ValueError(f"{path}: cannot load a tokenizer from this folder: {error}") from error
