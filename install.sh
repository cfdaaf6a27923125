#!/usr/bin/env bash
# Install vidclass with transformers support, training, plots and its test tools into the current Python, and fetch the default
# model's weights. Puts the pinned CPU build of PyTorch first where no torch is present,
# so that pip never pulls a CUDA build with gigabytes of extra packages.
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -c "import torch" 2>/dev/null; then
    "$PYTHON" -m pip install "torch==2.13.0"
fi
"$PYTHON" -m pip install -e ".[hf,plot,train,test]"
"$PYTHON" -m vidclass models pull
