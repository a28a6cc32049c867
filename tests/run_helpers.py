"""Shared by the `agentcap run` tests: the installed CLI, real agents from npm, canary scans, a run's files."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

AGENTCAP = str(Path(sys.executable).parent / "agentcap")
# A credential of the user's that is not the upstream key: agentcap run must blank it for the agent too.
OTHER_SECRET = "ghp-test-canary-not-the-upstream-key"


def agentcap_run(
    *args: str, cwd: Path, env: dict[str, str], timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    """`agentcap run ARGS` as a user types it: its own process, so /proc shows its real environment."""
    return subprocess.run(
        [AGENTCAP, "run", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


def user_env(**extra: str) -> dict[str, str]:
    """This environment without any real credential a developer may have exported, plus `extra`."""
    env = {key: value for key, value in os.environ.items() if not key.endswith(("_API_KEY", "_TOKEN"))}
    return env | extra


def files_holding(root: Path, needle: str) -> list[Path]:
    return [path for path in root.rglob("*") if path.is_file() and needle.encode() in path.read_bytes()]


def records(run: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run / "captures.jsonl").read_text().splitlines() if line]


def agent_run(run: Path) -> dict[str, Any]:
    return json.loads((run / "agent-run.json").read_text())


def npm_cli(request: pytest.FixtureRequest, package: str, version: str, binary: str) -> Path:
    """`binary` of npm `package@version`, installed once into the pytest cache (CI starts clean: it installs there)."""
    cache = request.config.cache
    name = f"npm-{binary}-{version}"
    prefix = cache.mkdir(name) if cache is not None else Path.home() / ".cache" / "agentcap-tests" / name
    path = prefix / "node_modules" / ".bin" / binary
    if not path.exists():
        npm = shutil.which("npm")
        assert npm, f"npm (Node 20+) is needed to install {package} for this test"
        installed = subprocess.run(
            [npm, "install", "--prefix", str(prefix), "--no-audit", "--no-fund", f"{package}@{version}"],
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert installed.returncode == 0, (
            f"npm install {package}@{version} failed:\n{installed.stderr[-3000:]}"
        )
    with tempfile.TemporaryDirectory() as home:  # some CLIs create their folders even for --version
        xdg = {f"XDG_{kind}_HOME": f"{home}/{kind.lower()}" for kind in ("CONFIG", "DATA", "STATE", "CACHE")}
        shown = subprocess.run(
            [str(path), "--version"],
            capture_output=True,
            text=True,
            timeout=60,
            env=os.environ | {"HOME": home} | xdg,
        )
    assert version in (shown.stdout + shown.stderr).split(), shown  # some print it on stderr
    return path


def env_dumping_wrapper(path: Path, agent: Path) -> Path:
    """A wrapper that runs `agent` after dumping what it could read into its HOME, per turn: its own
    environment, and its parent's start-up environment from /proc (`agentcap run`'s, which held the key)."""
    path.write_text(
        "#!/bin/sh\n"
        'env > "$HOME/agent-env-$AGENTCAP_TURN.txt"\n'
        'tr "\\000" "\\n" < /proc/$PPID/environ > "$HOME/parent-env-$AGENTCAP_TURN.txt"\n'
        f'exec "{agent}" "$@"\n'
    )
    path.chmod(0o755)
    return path


def two_tasks(root: Path, alpha: tuple[str, str] = ("Read the README", "Alpha again")) -> tuple[Path, Path]:
    """A project folder (a README) and a tasks file: alpha (its prompt and follow-up: `alpha`) and beta,
    two turns each."""
    work = root / "work"
    work.mkdir()
    (work / "README.md").write_text("agentcap test project\n")
    tasks = root / "tasks.jsonl"
    tasks.write_text(
        json.dumps({"task_id": "alpha", "prompt": alpha[0], "followups": [alpha[1]]})
        + "\n"
        + json.dumps({"task_id": "beta", "prompt": "Summarise the README", "followups": ["Beta again"]})
        + "\n"
    )
    return work, tasks


def assert_credentials_out_of_reach(
    root: Path, home: Path, turns: int, key: str, other: tuple[str, str] = ("GITHUB_TOKEN", OTHER_SECRET)
) -> list[dict[str, str]]:
    """What an `env_dumping_wrapper` agent could read never held the upstream `key` nor the `other`
    credential (name, value): not in its environment, blanked in `agentcap run`'s start-up environment,
    in no file below `root`. Returns the agent's environment of each turn."""
    name, value = other
    agent_envs = sorted(home.rglob("agent-env-*.txt"))
    parent_envs = sorted(home.rglob("parent-env-*.txt"))
    assert len(agent_envs) == len(parent_envs) == turns
    environments = []
    for dump in agent_envs:
        environment = dict(line.split("=", 1) for line in dump.read_text().splitlines() if "=" in line)
        assert name not in environment and key not in dump.read_text()
        assert environment["HOME"] == str(dump.parent)
        environments.append(environment)
    for dump in parent_envs:
        assert f"{name}=" + "x" * len(value) in dump.read_text().splitlines()
        assert key not in dump.read_text()
    assert files_holding(root, key) == []
    assert files_holding(root, value) == []
    return environments


class OutboundTrap:
    """A loopback HTTP proxy that refuses everything and notes each host asked for.

    Given to an agent as HTTPS_PROXY/HTTP_PROXY (`agentcap run` adds the loopback to NO_PROXY, so
    the capture proxy is reached directly): any call the agent makes beyond it lands here, fails
    at once as it would offline, and the test sees where it was going.
    """

    def __init__(self) -> None:
        self.hosts: list[str] = []
        hosts, lock = self.hosts, threading.Lock()

        class Refuse(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def refuse(self) -> None:
                with lock:
                    hosts.append(self.path if self.command == "CONNECT" else self.headers.get("host", "?"))
                self.send_response(502)
                self.send_header("content-length", "0")
                self.end_headers()

            do_CONNECT = do_GET = do_POST = do_HEAD = refuse

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Refuse)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def env(self) -> dict[str, str]:
        url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        return {name: url for name in ("HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy")}

    def __enter__(self) -> OutboundTrap:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
