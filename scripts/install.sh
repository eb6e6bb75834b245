#!/usr/bin/env bash
# Build the project's virtual environment from nothing: pip/setuptools pins, torch, detectron2
# (FAIR v0.6 python code from the pb1-detectron2 sdist, patched: no C++ extension, model-zoo configs
# packaged), then this project with its extras. Idempotent: a finished install leaves a stamp keyed
# by this script and setup.py, and a rerun with the same stamp only re-verifies.
#
#   scripts/install.sh            # .venv with extras all (ocr, onnx, ray, dev)
#   VENV=/path EXTRAS=all,tesseract PYTHON=python3.11 scripts/install.sh
set -euo pipefail

cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
EXTRAS=${EXTRAS:-all}
PYTHON=${PYTHON:-python3}
D2_SDIST=pb1-detectron2==0.6
D2_SHA256=5d2e9e51e523ec72f6a31cca04b0a515492e9514b773a3d134cedc0677170b29
SETUPTOOLS="setuptools<80.9"

step() { printf '\n==> %s\n' "$*"; }
die() { printf '\nINSTALL FAILED: %s\n' "$*" >&2; exit 1; }
trap 'die "command failed at line $LINENO: $BASH_COMMAND"' ERR

stamp_key=$(cat "$0" setup.py | sha256sum | cut -c1-16)-$EXTRAS
stamp=$VENV/.install-stamp

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$stamp_key" ] && [ -x "$VENV/bin/python" ]; then
  step "environment $VENV is up to date ($stamp_key); verifying"
else
  step "virtual environment $VENV"
  [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
  PY=$VENV/bin/python
  # pip >= 26.3 refuses the detectron2 sdist's direct-URL extra; setuptools >= 80.9 warns
  # (UserWarning) on, and 82 drops, pkg_resources, which detectron2.model_zoo imports. The
  # setuptools pin is repeated in every step so that no later resolution upgrades it.
  "$PY" -m pip install -q --disable-pip-version-check "pip<26.3" wheel "$SETUPTOOLS"

  step "torch"
  "$PY" -m pip install -q torch==2.14.1 torchvision==0.29.1 "$SETUPTOOLS"

  step "detectron2 (from $D2_SDIST, python only)"
  if "$PY" - <<'PY' 2>/dev/null
import importlib.util, pathlib, sys
spec = importlib.util.find_spec("detectron2")
ok = spec is not None and any(pathlib.Path(spec.origin).parent.glob("model_zoo/configs/COCO-Detection/*.yaml"))
sys.exit(0 if ok else 1)
PY
  then
    echo "detectron2 already installed with its model-zoo configs"
  else
    work=$(mktemp -d)
    "$PY" -m pip download -q --no-deps --no-binary :all: --no-build-isolation -d "$work" "$D2_SDIST"
    sdist=$(ls "$work"/*.tar.gz)
    echo "$D2_SHA256  $sdist" | sha256sum -c - || die "$sdist does not have the expected sha256"
    tar -xzf "$sdist" -C "$work"
    src=$(ls -d "$work"/*/ | head -1)
    "$PY" scripts/patch_detectron2_setup.py "$src/setup.py"
    "$PY" -m pip install -q --no-build-isolation "$src" "$SETUPTOOLS"
    rm -rf "$work"
  fi

  step "layoutlmv3-ditod [$EXTRAS]"
  "$PY" -m pip install -q --no-build-isolation -e ".[$EXTRAS]" "$SETUPTOOLS"
  echo "$stamp_key" > "$stamp"
fi

# A CJK font for Chinese synthetic pages (datasets/synthetic_pages.py --language zh). Optional:
# without root or apt, Chinese pages fail with a message naming the package; nothing else needs it.
if ! ls /usr/share/fonts/truetype/wqy/wqy-microhei.ttc >/dev/null 2>&1; then
  step "CJK font (fonts-wqy-microhei, optional)"
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get install -y -q fonts-wqy-microhei >/dev/null 2>&1 \
      || (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q fonts-wqy-microhei >/dev/null 2>&1) \
      || echo "  could not install fonts-wqy-microhei; Chinese synthetic pages need a CJK font"
  else
    echo "  not root or no apt-get: install fonts-wqy-microhei yourself for Chinese pages"
  fi
fi

step "verify"
"$VENV/bin/python" - <<'PY'
import importlib.metadata as md
import pathlib
import warnings

# A warning a user would see at import is a failed install (DeprecationWarnings are hidden from
# users by default: pkg_resources' one from detectron2.model_zoo is expected).
warnings.simplefilter("error")
warnings.simplefilter("ignore", DeprecationWarning)
import ditod  # noqa: F401  (applies the detectron2 shims first)
import detectron2
import layoutlmv3  # noqa: F401
from detectron2 import model_zoo

cfg = model_zoo.get_config_file("COCO-Detection/faster_rcnn_R_50_FPN_1x.yaml")
assert pathlib.Path(cfg).is_file(), cfg
n = len(list(pathlib.Path(detectron2.__file__).parent.glob("model_zoo/configs/**/*.yaml")))
assert n > 50, f"only {n} model-zoo configs packaged"
print(f"detectron2 {detectron2.__version__} ({n} model-zoo configs)")
for name in ["setuptools", "torch", "torchvision", "transformers", "tokenizers", "timm", "faster-coco-eval",
             "pycocotools", "opencv-python-headless", "rapidocr", "onnxruntime", "pytest", "ruff"]:
    try:
        print(f"{name} {md.version(name)}")
    except md.PackageNotFoundError:
        print(f"{name} (not installed)")
PY
touch "$stamp"
echo "environment ready: $VENV"
