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
# litdata (shards) requires torchvision; a torchvision built for another torch than the one installed
# (PyPI's, beside a CPU torch) fails at import, and torchmetrics imports it whenever it is present.
# pointdwc never uses it (litdata only for images): remove a torchvision that cannot be imported.
if .venv/bin/python -m pip show torchvision >/dev/null 2>&1 && ! .venv/bin/python -c "import torchvision" >/dev/null 2>&1; then
  echo "setup: removing torchvision (it does not match torch $(.venv/bin/python -c 'import torch; print(torch.__version__)'); nothing here needs it)"
  .venv/bin/python -m pip uninstall --quiet --yes torchvision
fi
