#!/usr/bin/env bash
# The main job from a fresh clone: install into .venv (CPU only, no network but the package
# registry), then run the embedded sweep: results/embedded-think/report.html.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
. .venv/bin/activate
python -m pip install -q --upgrade pip
# torch's CPU build (the local version +cpu), asked for first so nothing pulls a multi-GB CUDA build:
# from a local wheel or mirror where pip finds one, else from PyTorch's CPU wheel index.
TORCH_INDEX_URL="${TORCH_INDEX_URL-https://download.pytorch.org/whl/cpu}"
if ! python -m pip install -q "torch==2.13.0+cpu" 2>/dev/null; then
  python -m pip install -q --extra-index-url "$TORCH_INDEX_URL" "torch==2.13.0+cpu"
fi
python -m pip install -q ".[cpu,math]"
time ttscale sweep examples/embedded.yaml
echo "open results/embedded-think/report.html"
