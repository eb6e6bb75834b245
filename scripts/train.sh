#!/usr/bin/env bash
# Train one of the configs on all GPUs of this machine (or several machines).
#   scripts/train.sh configs/publaynet/cascade_layoutlmv3_image.yaml [KEY VALUE ...]
# Environment: NUM_GPUS (default: all visible), NUM_MACHINES (1), MACHINE_RANK (0),
#   DIST_URL (auto; tcp://HOST:PORT of rank 0 for several machines), DITOD_DATASETS (data root).
set -euo pipefail
cd "$(dirname "$0")/.."
config=${1:?usage: scripts/train.sh CONFIG [KEY VALUE ...]}
shift
gpus=${NUM_GPUS:-$(python -c "import torch; print(max(torch.cuda.device_count(), 1))")}
exec python tools/train_net.py --config-file "$config" --num-gpus "$gpus" \
    --num-machines "${NUM_MACHINES:-1}" --machine-rank "${MACHINE_RANK:-0}" \
    --dist-url "${DIST_URL:-auto}" --resume "$@"
