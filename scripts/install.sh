#!/usr/bin/env bash
# Installs deepeut and everything it needs into .venv/ at the repository root. Idempotent.
#   bash scripts/install.sh                 # Python packages (torch CPU wheel, nequip, allegro, tblite, ...)
#   DEEPEUT_CP2K=1 bash scripts/install.sh  # also the Debian cp2k package (DFT labeler, optional)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
stamp=$(cat pyproject.toml scripts/install.sh | sha256sum | cut -c1-16)
if [ "$(cat .venv/.install-stamp 2>/dev/null)" != "$stamp" ]; then
  .venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
  # the CPU wheel of torch first: a bare `torch` would pull a multi-GB CUDA build
  .venv/bin/python -m pip install -q --disable-pip-version-check torch==2.13.0
  .venv/bin/python -m pip install -q --disable-pip-version-check -e ".[dev]"
  echo "$stamp" > .venv/.install-stamp
fi
if [ "${DEEPEUT_CP2K:-0}" = "1" ] && ! command -v cp2k_shell >/dev/null 2>&1 && ! command -v cp2k_shell.psmp >/dev/null 2>&1; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq cp2k
fi
echo "deepeut installed in .venv ($(.venv/bin/python -c 'import deepeut; print(deepeut.__version__)'))"
