#!/usr/bin/env bash
# The main job in one command on a fresh machine: set up .venv, lay out the real models with
# ../shared/bin/fetch-models when it is there, then `distill stage=all` with the defaults: the teacher labels
# the pool, the default student learns from its labels, teacher and student are evaluated side by side, and
# the report's path is printed. About 7 minutes on 2 CPU cores after a set-up of about 5 (not timed whole since
# the default student changed on 2026-12-06: its stage=all took 6.3 min with the labels cached, labelling SST-2's
# 2,872 texts about 1 min; with the MiniLM default it was 12 min 11 s in all from a fresh clone).
# Extra arguments are Hydra overrides: bash scripts/run_main.sh data=ag_news teacher=mpnet
# The full comparison of students (over an hour): scripts/run_comparison.sh (docs/benchmarks.md).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
FETCH="${DISTILL_SHARED:-../shared}/bin/fetch-models"
if [ -x "$FETCH" ]; then
  PYTHON=.venv/bin/python "$FETCH" >/dev/null
fi
.venv/bin/python -m distill stage=all "$@"   # ends by printing "report: <path>"
