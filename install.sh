#!/usr/bin/env bash
# Install vidclass with transformers support, training, plots, the server, the Ray engine,
# the moment index, the OpenVINO and ONNX Runtime runtimes and its test tools into the
# current Python, and fetch the default model's weights. Puts the pinned CPU build of PyTorch first where no torch is present,
# so that pip never pulls a CUDA build with gigabytes of extra packages.
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -c "import torch" 2>/dev/null; then
    "$PYTHON" -m pip install "torch==2.13.0"
fi
"$PYTHON" -m pip install -e ".[hf,plot,train,serve,ray,search,openvino,onnxruntime,int8,test]"
"$PYTHON" -m vidclass models pull
# The web page's tests drive Debian's chromium through Playwright (never a downloaded browser).
if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null; then
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get install -y --no-install-recommends chromium >/dev/null \
        || { $SUDO apt-get update >/dev/null && $SUDO apt-get install -y --no-install-recommends chromium >/dev/null; } \
        || echo "install.sh: warning: could not install chromium; tests/test_page.py will skip" >&2
fi
