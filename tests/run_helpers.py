"""Shared by the `agentcap run` tests: the installed CLI, real agents from npm, canary scans, a run's files."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from factories import CANARY_KEY
from fake_model_server import FakeModelServer
from proxy_harness import load_addon_module

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


@dataclass(frozen=True)
class AgentRun:
    """What one real agent's `run_two_tasks` left behind, and what the fake upstream and the trap saw."""

    output: str  # agentcap run's stdout and stderr
    runs: Path
    run: Path
    home: Path  # the agent's HOMEs, one folder per task
    calls: list[dict[str, Any]]  # the run's records
    upstream_saw: list[dict[str, Any]]  # the requests that reached the fake model server
    outside_hosts: list[str]  # every other host the agent asked for (refused)


def run_two_tasks(
    agent: str,
    command: Path,
    root: Path,
    *,
    model: str,
    key_env: str,
    alpha: tuple[str, str] = ("Read the README", "Alpha again"),
    timeout: int = 120,
) -> AgentRun:
    """`agentcap run --agent AGENT` over `two_tasks` against the fake model server, as a user runs it:
    the real key (the canary) in `key_env` and another credential in the environment, the agent behind
    an `env_dumping_wrapper` and an `OutboundTrap`. Checks the run completed."""
    home, runs = root / "home", root / "runs"
    work, tasks = two_tasks(root, alpha)
    wrapper = env_dumping_wrapper(root / f"{agent}-wrapper", command)
    with FakeModelServer() as upstream, OutboundTrap() as outside:
        result = agentcap_run(
            *("--agent", agent, "--model", model, "--upstream", upstream.url, "--tasks", str(tasks)),
            *("--runs-dir", str(runs), "--run-id", f"{agent}-test", "--home", str(home)),
            *("--timeout", str(timeout), "--", str(wrapper)),
            cwd=work,
            env=user_env(**{key_env: CANARY_KEY}, GITHUB_TOKEN=OTHER_SECRET) | outside.env,
        )
        seen = upstream.seen
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert f"agentcap run {agent}-test: complete" in result.stderr
    assert f"agentcap export {runs / f'{agent}-test'}" in result.stderr
    assert CANARY_KEY not in output
    run = runs / f"{agent}-test"
    return AgentRun(output, runs, run, home, records(run), seen, list(outside.hosts))


def assert_every_turn_ok(run: Path, traces_per_task: int) -> list[dict[str, Any]]:
    """agent-run.json: both tasks complete with `traces_per_task` native sessions, every turn exit 0.
    Returns the turns."""
    info = agent_run(run)
    assert info["status"] == "complete"
    assert [(t["task_id"], t["status"], len(t["traces"])) for t in info["tasks"]] == [
        ("alpha", "complete", traces_per_task),
        ("beta", "complete", traces_per_task),
    ]
    turns = [turn for task in info["tasks"] for turn in task["turns"]]
    assert [(turn["turn"], turn["status"], turn["exit_code"]) for turn in turns] == [
        (1, "ok", 0),
        (2, "ok", 0),
    ] * 2
    return turns


def assert_records_hold_the_fingerprint(run: AgentRun, header: str, value: str) -> None:
    """Every record's `header` is the keyed fingerprint of `value` (the real credential the upstream got)."""
    redactor = load_addon_module().Redactor((run.runs / ".fingerprint-key").read_bytes().strip(), [])
    assert {dict(call["request"]["headers"])[header] for call in run.calls} == {
        redactor.mask(value.encode()).decode()
    }
