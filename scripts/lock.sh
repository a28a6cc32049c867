#!/usr/bin/env bash
# Refresh uv.lock from pyproject.toml (and the hashed uv pin the other scripts bootstrap from).
# Extra arguments go to `uv lock`, e.g. scripts/lock.sh --upgrade  or  --upgrade-package pyarrow
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
cd "$ROOT"
if [ ! -x "$VENV/bin/uv" ]; then
    [ -x "$VENV/bin/python" ] || "$(find_python)" -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --require-hashes --no-deps -r scripts/requirements-bootstrap.txt
fi
"$VENV/bin/uv" lock --python "$VENV/bin/python" "$@"
"$VENV/bin/uv" export --frozen --quiet --only-group bootstrap --no-emit-project --format requirements-txt \
    --output-file scripts/requirements-bootstrap.txt
echo "uv.lock and scripts/requirements-bootstrap.txt are current; commit both."
