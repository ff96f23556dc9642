#!/usr/bin/env bash
# Set up and run the tests: the fast tier (tiny random models) always; the integration tier on the real
# models when ../shared is present (models laid out by its fetch-models). Extra arguments go to pytest,
# e.g. `bash scripts/test.sh -m "not integration"` for the fast tier alone.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
FETCH="${DISTILL_SHARED:-../shared}/bin/fetch-models"
if [ -x "$FETCH" ]; then
  PYTHON=.venv/bin/python "$FETCH" >/dev/null || echo "test: fetch-models failed; integration tests will skip" >&2
fi
exec .venv/bin/python -m pytest "$@"
