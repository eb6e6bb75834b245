"""Tesseract through pytesseract; its words grouped into lines."""

import numpy as np

from .base import EngineUnavailable, register_engine, text_line

__all__ = ["TesseractEngine"]


@register_engine
class TesseractEngine:
    """Tesseract's lines (block, paragraph, line numbers); ``lang`` e.g. "eng", "chi_sim"."""

    name = "tesseract"

    def __init__(self, lang="eng", **_):
        try:
            import pytesseract

            self.version = str(pytesseract.get_tesseract_version())
        except ImportError as error:
            raise EngineUnavailable(
                "pytesseract is not installed: pip install 'layoutlmv3-ditod[tesseract]'"
            ) from error
        except Exception as error:
            raise EngineUnavailable(
                "the tesseract program is not installed: apt-get install tesseract-ocr "
                "(tesseract-ocr-chi-sim for Chinese)"
            ) from error
        self.pytesseract, self.lang = pytesseract, lang

    def __call__(self, image: np.ndarray) -> list:
        data = self.pytesseract.image_to_data(
            image, lang=self.lang, output_type=self.pytesseract.Output.DICT
        )
        lines = {}
        for i, text in enumerate(data["text"]):
            if not text.strip() or float(data["conf"][i]) < 0:
                continue
            key = (data["block_num"][i], data["par_num"][i], data["line_num"][i])
            x, y, w, h = (data[k][i] for k in ("left", "top", "width", "height"))
            lines.setdefault(key, []).append((x, y, x + w, y + h, text, float(data["conf"][i])))
        result = []
        for words in lines.values():
            x0, y0 = min(w[0] for w in words), min(w[1] for w in words)
            x1, y1 = max(w[2] for w in words), max(w[3] for w in words)
            poly = [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]
            text = " ".join(w[4] for w in words)
            result.append(text_line(poly, text, np.mean([w[5] for w in words]) / 100))
        return result
