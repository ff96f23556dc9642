#!/usr/bin/env bash
# Set up and run the tests: the fast tier (tiny random models) always; the integration tier on the real
# models when ../shared is present (models laid out by its fetch-models). Extra arguments go to pytest,
# e.g. `bash scripts/test.sh -m "not integration"` for the fast tier alone. Label Studio is installed into
# .venv-labelstudio for the review round trip (DISTILL_SKIP_LABEL_STUDIO=1: not; that test then skips).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
FETCH="${DISTILL_SHARED:-../shared}/bin/fetch-models"
if [ -x "$FETCH" ]; then
  PYTHON=.venv/bin/python "$FETCH" >/dev/null || echo "test: fetch-models failed; integration tests will skip" >&2
fi
if [ -z "${LABEL_STUDIO_BIN:-}" ] && [ "${DISTILL_SKIP_LABEL_STUDIO:-0}" != 1 ]; then
  LABEL_STUDIO_BIN="$(bash scripts/setup_labelstudio.sh | tail -1)"
  export LABEL_STUDIO_BIN
fi
exec .venv/bin/python -m pytest "$@"
