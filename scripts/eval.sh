#!/usr/bin/env bash
# Evaluate a trained detector on the config's DATASETS.TEST (COCO AP, per-class table).
#   scripts/eval.sh CONFIG WEIGHTS [KEY VALUE ...]
set -euo pipefail
cd "$(dirname "$0")/.."
config=${1:?usage: scripts/eval.sh CONFIG WEIGHTS [KEY VALUE ...]}
weights=${2:?usage: scripts/eval.sh CONFIG WEIGHTS [KEY VALUE ...]}
shift 2
gpus=${NUM_GPUS:-$(python -c "import torch; print(max(torch.cuda.device_count(), 1))")}
exec python tools/train_net.py --config-file "$config" --num-gpus "$gpus" --eval-only \
    MODEL.WEIGHTS "$weights" "$@"
