#!/usr/bin/env bash
# Create .venv and install distill with everything its stages and tests use. Idempotent and quick when
# nothing changed. torch is installed first at a pinned version: on a CPU-only machine that is the CPU
# wheel (2.13.0 here); every later install is constrained to it, so nothing pulls a second multi-GB build.
# Override with TORCH_SPEC (e.g. TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128").
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY="${PYTHON:-python3}"
TORCH_SPEC="${TORCH_SPEC:-torch==2.13.0}"
VENV="${DISTILL_VENV:-.venv}"

[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
pip() { "$VENV/bin/python" -m pip --disable-pip-version-check -q "$@"; }

stamp="$VENV/.distill-installed"
want="$(cat pyproject.toml; echo "$TORCH_SPEC")"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  echo "setup: $VENV is up to date" >&2
  exit 0
fi

echo "setup: installing $TORCH_SPEC into $VENV" >&2
# shellcheck disable=SC2086
pip install $TORCH_SPEC 2>&1 | grep -v "is ignored: it is neither" >&2 || true
# -W: torch warns that numpy is missing, which is only true until the next line installs it
"$VENV/bin/python" -W ignore::UserWarning -c 'import torch' || { echo "setup: torch failed to install" >&2; exit 1; }
constraints="$VENV/constraints.txt"
"$VENV/bin/python" -W ignore::UserWarning -c 'import torch; print("torch==" + torch.__version__)' > "$constraints"

echo "setup: installing distill[dev] (editable) into $VENV" >&2
pip install -c "$constraints" -e ".[dev]" 2>&1 | grep -v "is ignored: it is neither" >&2 || true
"$VENV/bin/python" -c 'import distill, transformers, hydra, txtai' || { echo "setup: install failed" >&2; exit 1; }
echo "$want" > "$stamp"
echo "setup: done ($("$VENV/bin/python" -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__)'))" >&2
