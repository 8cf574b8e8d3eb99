#!/usr/bin/env bash
# The main job from a fresh clone: install into .venv (CPU only, no network but the package
# registry), then run the embedded sweep: results/embedded-arith/report.html.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
. .venv/bin/activate
python -m pip install -q --upgrade pip
python -m pip install -q "torch==2.13.0"     # CPU build; asked for first so nothing pulls a CUDA build
python -m pip install -q ".[cpu,math]"
time ttscale sweep examples/embedded.yaml
echo "open results/embedded-arith/report.html"
