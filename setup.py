"""Document-layout detection with a LayoutLMv3 backbone on detectron2.

detectron2 itself is not installable from the package index under its own name; `scripts/install.sh`
installs it (patched, without compiled ops) before this package. See README.md.
"""

from setuptools import find_packages, setup

REQUIRES = [
    "torch==2.14.1",
    "torchvision==0.29.1",
    "transformers>=4.40",
    "tokenizers>=0.19",
    "sentencepiece>=0.2",
    "safetensors>=0.4",
    "timm>=0.9",
    "numpy>=1.24",
    "Pillow>=10",
    "opencv-python-headless>=4.8",
    "shapely>=2.0",
    "pycocotools>=2.0.7",
    "faster-coco-eval>=1.6",
    "tqdm>=4.60",
    "tensorboard>=2.14",
    "matplotlib>=3.7",
    "pypdfium2>=4.20",
]

EXTRAS = {
    # Default OCR engine: its PP-OCR models ship inside the wheel, so it works offline (it runs
    # on onnxruntime, which rapidocr does not declare).
    "ocr": ["rapidocr==3.10.0", "onnxruntime>=1.17"],
    # export (tools/export.py) and the onnxruntime inference backend (tools/infer.py --backend)
    "onnx": ["onnx>=1.16", "onnxruntime>=1.17"],
    # OCR and batch inference past one machine (--ray-address)
    "ray": ["ray>=2.9"],
    "paddle": ["paddleocr>=2.7", "paddlepaddle==3.2.2"],
    "tesseract": ["pytesseract>=0.3.10"],
    "dev": [
        "pytest>=8",
        "pytest-timeout>=2.2",
        "hypothesis>=6.100",
        "ruff>=0.6",
        "pdfplumber>=0.11",
    ],
}
# everything the test suite exercises (make setup installs it)
EXTRAS["all"] = sorted({r for name in ("ocr", "onnx", "ray", "dev") for r in EXTRAS[name]})


setup(
    name="layoutlmv3-ditod",
    version="0.1.0",
    description="Document layout detection: LayoutLMv3 + text fusion + Cascade R-CNN (detectron2)",
    python_requires=">=3.10",
    packages=find_packages(include=["layoutlmv3", "layoutlmv3.*", "ditod", "ditod.*"]),
    install_requires=REQUIRES,
    extras_require=EXTRAS,
)
