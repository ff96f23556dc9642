#!/usr/bin/env bash
# The main job in one command on a fresh machine: set up .venv, lay out the real models with
# ../shared/bin/fetch-models when it is there, then label -> train -> eval (SST-2 by default).
# Extra arguments are Hydra overrides: bash scripts/run_main.sh data=ag_news train.targets=hard
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
FETCH="${DISTILL_SHARED:-../shared}/bin/fetch-models"
if [ -x "$FETCH" ]; then
  PYTHON=.venv/bin/python "$FETCH" >/dev/null
fi
exec .venv/bin/python -m distill stage=all "$@"
