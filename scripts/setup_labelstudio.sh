#!/usr/bin/env bash
# Label Studio in its own environment (.venv-labelstudio), for the review round-trip test
# (tests/test_labelstudio.py) and for people who review in it: `.venv-labelstudio/bin/label-studio start`.
# Kept out of distill's own environment: it pins its own Django and friends. Pinned to the version the
# round trip was checked against. A failed install is reported, not fatal: that test then skips, saying why.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
VERSION="${LABEL_STUDIO_VERSION:-1.23.2}"
BIN=.venv-labelstudio/bin/label-studio
if [ ! -x "$BIN" ] || ! .venv-labelstudio/bin/python -c "import importlib.metadata as m, sys; sys.exit(m.version('label-studio') != '$VERSION')" 2>/dev/null; then
  echo "setup: installing label-studio==$VERSION into .venv-labelstudio (once)" >&2
  { python3 -m venv .venv-labelstudio && .venv-labelstudio/bin/pip install -q "label-studio==$VERSION"; } >/dev/null 2>&1 \
    || { echo "setup: label-studio could not be installed; the Label Studio round trip will skip" >&2; exit 0; }
fi
echo "$PWD/$BIN"
