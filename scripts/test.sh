#!/usr/bin/env bash
# Run the test suite (the default, fast selection). Sets up .venv first when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/latentguard ]; then bash scripts/setup.sh; fi
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 MPLBACKEND=Agg
exec .venv/bin/python -m pytest "$@"
