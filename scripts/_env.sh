# Sourced by the scripts: finds Python 3.12+ and makes sure .venv holds exactly what uv.lock says.
# Re-running is cheap: uv syncs only when uv.lock changed since the last sync.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
# uv must use the interpreter we found, never download one (this network has no python.org).
export UV_PYTHON_DOWNLOADS=never UV_PROJECT_ENVIRONMENT="$VENV"

find_python() {
    local candidate
    for candidate in "${AGENTCAP_PYTHON:-}" python3.12 python3.13 python3; do
        [ -n "$candidate" ] || continue
        if "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 12))' >/dev/null 2>&1; then
            command -v "$candidate"; return 0
        fi
    done
    # pyenv installs versions that its shims do not expose unless selected.
    for candidate in "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.1[2-9]*/bin/python3; do
        if [ -x "$candidate" ]; then echo "$candidate"; return 0; fi
    done
    echo "agentcap needs Python >= 3.12 (mitmproxy 12 requires it); install python3.12 or set AGENTCAP_PYTHON" >&2
    return 1
}

# check_lock [DIR]: one line and exit 1 when DIR's pyproject.toml (default: this checkout's) and its
# uv.lock disagree. Offline: an unchanged pyproject needs no index to confirm.
check_lock() {
    if ! "$VENV/bin/uv" lock --check --offline --quiet --project "${1:-$ROOT}" --python "$VENV/bin/python" \
        >/dev/null 2>&1; then
        echo "uv.lock does not match pyproject.toml: run scripts/lock.sh and commit uv.lock" >&2
        exit 1
    fi
}

ensure_venv() {
    local extras="${1:-dev}" stamp
    if [ ! -x "$VENV/bin/python" ]; then
        "$(find_python)" -m venv "$VENV"
    fi
    if [ ! -x "$VENV/bin/uv" ]; then
        # uv itself comes from a hashed requirement generated from the lock by scripts/lock.sh.
        "$VENV/bin/python" -m pip install --quiet --require-hashes --no-deps \
            -r "$ROOT/scripts/requirements-bootstrap.txt" 2> >(grep -v "^WARNING: Location" >&2)
    fi
    check_lock
    stamp="$VENV/.agentcap-synced-$extras"
    if [ ! -f "$stamp" ] || [ "$ROOT/uv.lock" -nt "$stamp" ] || [ "$ROOT/addons/agentcap.py" -nt "$stamp" ]; then
        # Exactly the lock: nothing newer, nothing left over (the bootstrap group keeps uv itself).
        "$VENV/bin/uv" sync --locked --quiet --python "$VENV/bin/python" --extra "$extras" --group bootstrap
        rm -f "$VENV"/.agentcap-synced-*
        touch "$stamp"
    fi
    export PATH="$VENV/bin:$PATH"
}
