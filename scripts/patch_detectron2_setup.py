"""Patch detectron2 v0.6's setup.py for a python-only install (used by scripts/install.sh).

- ``ext_modules=[]``: no C++/CUDA extension (``ditod.compat`` stubs ``detectron2._C``).
- ``package_data`` globs the model-zoo configs inside ``detectron2/model_zoo/configs``; the
  original globs a top-level ``configs/`` that the sdist does not have, so the configs would be
  silently missing from the install.
"""

import sys
from pathlib import Path

MODEL_ZOO_CONFIGS = '["configs/**/*.yaml", "configs/**/*.py"]'
REPLACEMENTS = {
    "ext_modules=get_extensions(),": "ext_modules=[],",
    'package_data={"detectron2.model_zoo": get_model_zoo_configs()},': (
        'package_data={"detectron2.model_zoo": ' + MODEL_ZOO_CONFIGS + "},"
    ),
}


def main(setup_py: str) -> None:
    path = Path(setup_py)
    text = path.read_text()
    for old, new in REPLACEMENTS.items():
        if text.count(old) != 1:
            sys.exit(f"{path}: expected exactly one '{old}'; not detectron2 v0.6's setup.py?")
        text = text.replace(old, new)
    path.write_text(text)
    print(f"patched {path}")


if __name__ == "__main__":
    main(sys.argv[1])
