# Sourced by the scripts: finds Python 3.12+ and makes sure .venv exists with agentcap installed.
# Re-running is cheap: pip runs only when pyproject.toml changed since the last install.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"

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

ensure_venv() {
    local extras="${1:-dev}" stamp
    if [ ! -x "$VENV/bin/python" ]; then
        "$(find_python)" -m venv "$VENV"
        "$VENV/bin/python" -m pip install --quiet --upgrade pip
    fi
    stamp="$VENV/.agentcap-installed-$extras"
    if [ ! -f "$stamp" ] || [ "$ROOT/pyproject.toml" -nt "$stamp" ]; then
        # One resolver run for everything: installing packages in separate steps lets a later
        # one upgrade a dependency past mitmproxy's pins.
        "$VENV/bin/python" -m pip install --quiet -e "$ROOT[$extras]"
        touch "$stamp"
    fi
    export PATH="$VENV/bin:$PATH"
}
