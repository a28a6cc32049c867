#!/usr/bin/env bash
# README command 1: record a scripted agent through the proxy, export it, list it, load it back.
#
# Starts a loopback fake model server and mitmdump (addons/agentcap.py, reverse mode) in front of it,
# runs scripts/demo_agent.py (the openai SDK in a tool-use loop: 2 tasks × 2 turns, tagged), stops
# the proxy, exports the run locally (secret-scanned offline with kingfisher), prints `agentcap ls` and the
# output tree, and loads the captures parquet with `datasets`. Everything listens on 127.0.0.1
# only and stops by itself. Output: demo-out/ (or $AGENTCAP_DEMO_DIR), replaced on every run.
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
ensure_venv dev
cd "$ROOT"

OUT="${AGENTCAP_DEMO_DIR:-$ROOT/demo-out}"
RUNS="$OUT/runs"
RUN_ID="demo-$(date -u +%Y%m%dT%H%M%S)"
rm -rf "$OUT"
mkdir -p "$OUT"

SERVER_PID=""
PROXY_PID=""
cleanup() {
    for pid in "$PROXY_PID" "$SERVER_PID"; do
        if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
            kill "$pid" 2>/dev/null || true
            wait "$pid" 2>/dev/null || true
        fi
    done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# wait_until <seconds> <command...>: poll until the command succeeds.
wait_until() {
    local deadline=$((SECONDS + $1)); shift
    until "$@" 2>/dev/null; do
        if [ "$SECONDS" -ge "$deadline" ]; then echo "demo: timed out waiting for: $*" >&2; return 1; fi
        sleep 0.1
    done
}
port_open() { python -c 'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1).close()' "$1"; }

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "fake model server (loopback)"
python scripts/fake_model_server.py --host 127.0.0.1 --port-file "$OUT/fake.port" >"$OUT/fake-server.log" 2>&1 &
SERVER_PID=$!
wait_until 10 test -s "$OUT/fake.port"
FAKE_URL="http://127.0.0.1:$(cat "$OUT/fake.port")"
echo "$FAKE_URL"

step "mitmdump + the capture addon (agentcap addon-path), reverse proxy in front of it"
PROXY_PORT="$(python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
mitmdump -q -s "$(agentcap addon-path)" --mode "reverse:$FAKE_URL" --listen-host 127.0.0.1 -p "$PROXY_PORT" \
    --set agentcap_dir="$RUNS" --set agentcap_agent=demo --set agentcap_run="$RUN_ID" >"$OUT/proxy.log" 2>&1 &
PROXY_PID=$!
wait_until 30 port_open "$PROXY_PORT" || { cat "$OUT/proxy.log" >&2; exit 1; }
echo "http://127.0.0.1:$PROXY_PORT  →  $FAKE_URL   (run $RUN_ID)"

step "scripted agent: 2 tasks × 2 turns through the proxy"
python scripts/demo_agent.py --base-url "http://127.0.0.1:$PROXY_PORT/v1" --traces-dir "$RUNS/$RUN_ID/traces"

step "stop the proxy (SIGINT: it finishes run.json)"
kill -INT "$PROXY_PID"
wait "$PROXY_PID" || true
PROXY_PID=""

step "agentcap ls -l"
agentcap ls "$RUNS" -l

step "agentcap export (local, secret-scanned)"
agentcap export "$RUN_ID" --runs-dir "$RUNS" --output "$OUT/export" --no-verify  # kingfisher, offline: nothing leaves the machine

step "output tree"
(cd "$OUT/export" && find . -type f | sort)

step "load the captures back with datasets.load_dataset(\"parquet\", ...)"
python - "$OUT/export/local/agentcap-captures/data" <<'PY'
import json
import sys

import datasets

datasets.disable_progress_bars()
calls = datasets.load_dataset("parquet", data_files=f"{sys.argv[1]}/*.parquet", split="train")
print(calls)
for row in calls:
    response = json.loads(row["response"])
    kind = "stream" if response.get("stream") else "json"
    print(f"seq={row['seq']} task={row['task_id']} turn={row['turn']} {kind:6} status={row['status_code']} "
          f"model={row['model']} served_model={row['served_model']}")
PY
echo
echo "demo done: $OUT"
