#!/usr/bin/env bash
# Create ./.venv and install pointdwc into it (editable), with the test extras.
#
# torch is installed first (TORCH_VERSION, default 2.13.0: on a CPU machine whose pip index carries
# the CPU build this takes that build, elsewhere it is the normal torch wheel, CUDA on Linux). Every
# later pip call runs under a constraints file that pins the torch now installed, so no dependency
# can ever upgrade it to the newest multi-GB CUDA wheel.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
PIP=(.venv/bin/python -m pip install --quiet --disable-pip-version-check)
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  "${PIP[@]}" "torch==${TORCH_VERSION:-2.13.0}"
fi
.venv/bin/python -c "import torch; print('torch==' + torch.__version__)" > .venv/constraints.txt
"${PIP[@]}" -c .venv/constraints.txt -e ".[test]"
