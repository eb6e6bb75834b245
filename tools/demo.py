"""Demo of what exists so far: a synthetic page through tokenization, backbone and text fusion.

Renders a page with known text lines, writes its OCR JSON (the format the OCR step produces),
tokenizes it with a BPE tokenizer trained on the spot, runs a tiny LayoutLMv3 detection backbone
over image + text, fuses the text tokens into the stride-32 map (gated), and writes into one
folder: the page, its OCR JSON, an overlay of the cells each text line covers, and a summary.

    python tools/demo.py --output-dir output/demo
"""

import argparse
import json
import logging
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont
from tokenizers import ByteLevelBPETokenizer
from transformers import LayoutLMv3Config, LayoutLMv3Tokenizer

from ditod.fusion import TextFusion, scatter_text_to_grid
from layoutlmv3 import LayoutLMv3Model, OCRPageTokenizer

LINES = [
    ("Document Layout Analysis", 40, 40, 36),
    ("1 Introduction", 40, 120, 24),
    ("Pages come in, layout boxes come out.", 40, 170, 18),
    ("Text tokens carry the boxes of their lines.", 40, 200, 18),
    ("Figure 3: the text map on the stride-32 grid", 40, 520, 16),
    ("Table 2: feature pyramid shapes", 40, 700, 16),
]
PAGE_SIZE = (608, 800)  # width, height


def render_page():
    """A white page with LINES drawn; returns the image and its OCR dict (exact line boxes)."""
    page = Image.new("RGB", PAGE_SIZE, "white")
    draw = ImageDraw.Draw(page)
    words, boxes = [], []
    for text, x, y, size in LINES:
        font = ImageFont.load_default(size=size)
        x0, y0, x1, y1 = draw.textbbox((x, y), text, font=font)
        draw.text((x, y), text, fill="black", font=font)
        words.append(text)
        boxes.append([x0, y0, x1 - x0, y1 - y0])
    draw.rectangle([40, 260, 560, 500], outline="black", width=3)  # a figure
    return page, {"bbox": boxes, "words": words, "W": PAGE_SIZE[0], "H": PAGE_SIZE[1]}


def train_tokenizer(folder: Path, corpus):
    trainer = ByteLevelBPETokenizer(add_prefix_space=True)
    special = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    trainer.train_from_iterator(corpus, vocab_size=400, min_frequency=1, special_tokens=special)
    trainer.save_model(str(folder))
    return LayoutLMv3Tokenizer(vocab=str(folder / "vocab.json"), merges=str(folder / "merges.txt"))


def write_json(path: Path, data) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, path)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", default="output/demo")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    out = Path(args.output_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)

    page, ocr = render_page()
    page.save(out / "page.png")
    write_json(out / "page.ocr.json", ocr)

    tokenizer = OCRPageTokenizer(train_tokenizer(out, ocr["words"]), tokens_per_segment=0)
    encoded = tokenizer(ocr, source="page.ocr.json")
    config = LayoutLMv3Config(
        hidden_size=64, num_hidden_layers=4, num_attention_heads=4, intermediate_size=128,
        vocab_size=len(tokenizer.tokenizer), coordinate_size=12, shape_size=8,
        has_relative_attention_bias=False, has_spatial_attention_bias=False,
    )  # fmt: skip
    tokenizer.check_vocab_size(config.vocab_size)
    backbone = LayoutLMv3Model(
        config, detection=True, out_features=("layer0", "layer1", "layer2", "layer3")
    ).eval()
    pixels = torch.from_numpy(np.asarray(page, dtype=np.float32)).permute(2, 0, 1)[None]
    pixels = (pixels - 127.5) / 127.5
    text = dict(input_ids=encoded.input_ids[None], bbox=encoded.bbox[None])
    with torch.no_grad():
        output = backbone(**text, attention_mask=encoded.attention_mask[None], pixel_values=pixels)
        top = output.feature_maps["layer3"]
        tokens = output.text_hidden_states["layer3"]
        mask = encoded.attention_mask[None].bool()
        mask[:, [0, -1]] = False  # <s> and </s> carry no box
        sizes = [(PAGE_SIZE[1], PAGE_SIZE[0])]
        fused = TextFusion("gated", config.hidden_size, stride=32)(
            top, tokens, encoded.bbox[None], mask, sizes
        )
        coverage = scatter_text_to_grid(
            torch.ones_like(tokens[..., :1]), encoded.bbox[None], mask, sizes, top.shape[-2:], 32
        )[0, 0]

    # Tint the cells text covers, darker where more tokens fall.
    heat = (coverage / coverage.max()).numpy()
    strength = Image.fromarray((heat * 120).astype(np.uint8)).resize(PAGE_SIZE, Image.NEAREST)
    red = Image.new("RGB", PAGE_SIZE, (220, 30, 30))
    Image.composite(red, page, strength).save(out / "text_map_overlay.png")

    summary = {
        "page": list(PAGE_SIZE),
        "text_tokens": int(encoded.input_ids.numel()),
        "feature_maps": {k: list(v.shape) for k, v in output.feature_maps.items()},
        "fused_layer3": list(fused.shape),
        "cells_covered_by_text": int((coverage > 0).sum()),
    }
    write_json(out / "summary.json", summary)
    logging.info(json.dumps(summary, indent=2))
    logging.info("demo output: %s", out)


if __name__ == "__main__":
    main()
