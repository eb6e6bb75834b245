"""PaddleOCR 2.x (``ocr(image, cls=...)``) or 3.x (``predict``); model folders passable for
offline use."""

import numpy as np

from .base import EngineUnavailable, package_version, register_engine, text_line

__all__ = ["PaddleOCREngine"]


@register_engine
class PaddleOCREngine:
    """PaddleOCR's pipeline; ``lang`` "ch" recognises Chinese and English."""

    name = "paddleocr"

    def __init__(
        self,
        use_angle_cls=True,
        lang="ch",
        det_model_dir=None,
        rec_model_dir=None,
        cls_model_dir=None,
        **_,
    ):
        try:
            import paddleocr
        except ImportError as error:
            raise EngineUnavailable(
                "paddleocr is not installed: pip install 'layoutlmv3-ditod[paddle]', and pass "
                "--det-model-dir/--rec-model-dir to run offline"
            ) from error
        self.version = package_version("paddleocr")
        self.major = int(self.version.split(".")[0]) if self.version[0].isdigit() else 2
        self.use_angle_cls = use_angle_cls
        try:
            if self.major >= 3:
                self.engine = paddleocr.PaddleOCR(
                    use_textline_orientation=use_angle_cls,
                    lang=lang,
                    text_detection_model_dir=det_model_dir,
                    text_recognition_model_dir=rec_model_dir,
                )
            else:
                self.engine = paddleocr.PaddleOCR(
                    use_angle_cls=use_angle_cls,
                    lang=lang,
                    det_model_dir=det_model_dir,
                    rec_model_dir=rec_model_dir,
                    cls_model_dir=cls_model_dir,
                    show_log=False,
                )
        except Exception as error:
            raise EngineUnavailable(
                f"paddleocr {self.version} could not load its models ({error}); offline, pass "
                "local --det-model-dir and --rec-model-dir (and --cls-model-dir)"
            ) from error

    def __call__(self, image: np.ndarray) -> list:
        bgr = np.ascontiguousarray(image[:, :, ::-1])
        if self.major >= 3:
            lines = []
            for page in self.engine.predict(bgr):
                found = zip(page["rec_polys"], page["rec_texts"], page["rec_scores"])
                lines += [text_line(poly, text, score) for poly, text, score in found]
            return lines
        result = self.engine.ocr(bgr, cls=self.use_angle_cls)
        page = (result or [None])[0] or []
        return [text_line(poly, text, score) for poly, (text, score) in page]
