#!/usr/bin/env bash
# configs/publaynet/cascade_layoutlmv3_image.yaml on all GPUs of this machine.
#   scripts/publaynet_image.sh train [KEY VALUE ...]          (resumes from OUTPUT_DIR if it has a checkpoint)
#   scripts/publaynet_image.sh eval WEIGHTS [KEY VALUE ...]
set -euo pipefail
here=$(dirname "$0")
mode=${1:?usage: $0 train|eval [WEIGHTS] [KEY VALUE ...]}
shift
case $mode in
    train) exec "$here/train.sh" configs/publaynet/cascade_layoutlmv3_image.yaml "$@" ;;
    eval) exec "$here/eval.sh" configs/publaynet/cascade_layoutlmv3_image.yaml "$@" ;;
    *) echo "usage: $0 train|eval [WEIGHTS] [KEY VALUE ...]" >&2; exit 2 ;;
esac
