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
# The report's browser test drives Debian's Chromium (Playwright never downloads a browser here).
# Installed when missing; a machine that cannot install it fails here, in one line, not in a skip.
if ! command -v chromium >/dev/null 2>&1; then
    if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1 || ! {
        apt-get update -qq >/dev/null 2>&1 &&
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null 2>&1
    }; then
        echo "chromium is missing and could not be installed (needs root and apt-get: apt-get install chromium)" >&2
        exit 1
    fi
fi
# The architecture (docs/architecture.md): allowed import directions, then strict types.
lint-imports --no-cache
mypy --strict exporter
export HF_HUB_DISABLE_TELEMETRY=1 HF_HUB_DISABLE_UPDATE_CHECK=1 HF_HUB_OFFLINE=0
exec python -m pytest -q "$@"
