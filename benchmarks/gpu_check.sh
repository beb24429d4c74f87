#!/usr/bin/env bash
# GPU readiness in one go, on a machine with one CUDA GPU and this project installed
# (make install): train_speed at 224x224 and 384x288 with 16-mixed and channels-last, a
# 2-epoch experiment=competition fold, and predict.py on it; one table, also written to
# benchmarks/results/gpu_check.md. About 10 minutes on one GPU.
#   bash benchmarks/gpu_check.sh [extra options of python -m benchmarks.gpu_check]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
"$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA GPU visible to torch')"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
exec "$PY" -m benchmarks.gpu_check "$@"
