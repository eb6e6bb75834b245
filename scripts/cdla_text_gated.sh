#!/usr/bin/env bash
# configs/cdla/cascade_layoutlmv3_text_gated.yaml on all GPUs of this machine.
#   scripts/cdla_text_gated.sh train [KEY VALUE ...]          (resumes from OUTPUT_DIR if it has a checkpoint)
#   scripts/cdla_text_gated.sh eval WEIGHTS [KEY VALUE ...]
set -euo pipefail
here=$(dirname "$0")
mode=${1:?usage: $0 train|eval [WEIGHTS] [KEY VALUE ...]}
shift
case $mode in
    train) exec "$here/train.sh" configs/cdla/cascade_layoutlmv3_text_gated.yaml "$@" ;;
    eval) exec "$here/eval.sh" configs/cdla/cascade_layoutlmv3_text_gated.yaml "$@" ;;
    *) echo "usage: $0 train|eval [WEIGHTS] [KEY VALUE ...]" >&2; exit 2 ;;
esac
