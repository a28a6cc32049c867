#!/usr/bin/env bash
# Install what is missing (.venv exactly as uv.lock says, agentcap[dev]) and run the whole test suite.
# Extra arguments go to pytest, e.g. scripts/test.sh -k addon -x
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
ensure_venv dev
cd "$ROOT"
ruff check .
ruff format --check . || { echo "run: .venv/bin/ruff format ." >&2; exit 1; }
# Every import declared where it is used: product code against the runtime dependencies only
# (a dev-only import there is DEP004), tests and scripts against runtime + dev.
deptry --no-ansi exporter addons
deptry --no-ansi --exclude '\.venv' --ignore DEP002,DEP004 tests scripts
# The architecture (docs/architecture.md): allowed import directions, then strict types.
lint-imports --no-cache
mypy --strict exporter
export HF_HUB_DISABLE_TELEMETRY=1 HF_HUB_DISABLE_UPDATE_CHECK=1 HF_HUB_OFFLINE=0
exec python -m pytest -q "$@"
