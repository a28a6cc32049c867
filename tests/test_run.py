"""`agentcap run` with the generic wiring (the scripted openai-SDK agent), Ctrl-C, and bad input.

The real-agent run (pi from npm) is in test_run_pi.py.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from click.testing import CliRunner
from factories import CANARY_KEY
from fake_model_server import FakeModelServer
from run_helpers import AGENTCAP, agent_run, agentcap_run, files_holding, records, user_env

from exporter.core.errors import AbortRun
from exporter.run.command import run_command
from exporter.run.proxy import Proxy, ProxySettings

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeModelServer]:
    with FakeModelServer() as server:
        yield server


def test_generic_runs_the_scripted_sdk_agent_as_given(upstream: FakeModelServer, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    before = len(upstream.seen)
    result = agentcap_run(
        *(
            "--agent",
            "generic",
            "--upstream",
            upstream.url + "/v1",
            "--runs-dir",
            str(runs),
            "--run-id",
            "demo",
        ),
        *("--", sys.executable, str(ROOT / "scripts" / "demo_agent.py")),
        cwd=tmp_path,
        env=user_env(OPENAI_API_KEY=CANARY_KEY),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "turn 2:" in result.stdout  # attached: the agent's own output reaches the terminal
    run = runs / "demo"
    calls = records(run)
    # No prompt: agentcap tags nothing; the agent's own X-Agentcap-Task / -Turn headers apply.
    assert sorted({(call["task_id"], call["turn"]) for call in calls}) == [
        ("task-readme", 1), ("task-readme", 2), ("task-tests", 1), ("task-tests", 2)
    ]  # fmt: skip
    assert len(calls) == 8
    posts = upstream.seen[before:]
    assert {request["headers"]["authorization"] for request in posts} == {f"Bearer {CANARY_KEY}"}
    info = agent_run(run)
    assert info["status"] == "complete" and info["key_variable"] == "OPENAI_API_KEY"
    [task] = info["tasks"]
    assert task["task_id"] is None and task["traces"] == []
    assert [(t["turn"], t["status"], t["exit_code"], t["stdout"]) for t in task["turns"]] == [
        (None, "ok", 0, None)
    ]
    assert files_holding(tmp_path, CANARY_KEY) == []


AGENT_THAT_HANGS = """
import json, os, sys, time, urllib.request
request = urllib.request.Request(
    os.environ["OPENAI_BASE_URL"] + "/chat/completions",
    data=json.dumps({"model": "m", "messages": [{"role": "user", "content": sys.argv[1]}]}).encode(),
    headers={"Authorization": "Bearer " + os.environ["OPENAI_API_KEY"], "Content-Type": "application/json"},
)
print(urllib.request.urlopen(request).read().decode(), flush=True)
urllib.request.urlopen(os.environ["AGENTCAP_TEST_TARGET"] + "/health").read()  # "I have my answer"
time.sleep(600)
"""


def processes_running(script: Path) -> list[int]:
    """The pids of every process whose command line names `script` (an agent left behind)."""
    return [
        p.pid for p in psutil.process_iter(["cmdline"]) if str(script) in " ".join(p.info["cmdline"] or [])
    ]


def start_hanging_run(
    upstream: FakeModelServer, root: Path, run_id: str, *options: str, key: str | None = None, **popen: Any
) -> tuple[subprocess.Popen[str], Path]:
    """`agentcap run` of AGENT_THAT_HANGS, returned once its agent has its answer and hangs; and the
    agent's script. No `key`: `--no-key`."""
    script = root / "hangs.py"
    script.write_text(AGENT_THAT_HANGS)
    before = len(upstream.seen)
    process = subprocess.Popen(
        [
            *(AGENTCAP, "run", "--upstream", upstream.url, "--prompt", "hello", *options),
            *(() if key else ("--no-key",)),
            *("--runs-dir", str(root / "runs"), "--run-id", run_id, "--", sys.executable, str(script)),
        ],
        cwd=root,
        env=user_env(AGENTCAP_TEST_TARGET=upstream.url, **({"OPENAI_API_KEY": key} if key else {})),
        text=True,
        **popen,
    )
    upstream.wait_for_requests(before + 2)  # the proxied call, then the agent's direct /health
    return process, script


def test_ctrl_c_stops_the_agent_and_finishes_the_run_as_interrupted(
    upstream: FakeModelServer, tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    process, script = start_hanging_run(
        upstream,
        tmp_path,
        "stopped",
        "--turns",
        "2",
        key=CANARY_KEY,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)

    assert process.returncode == 130, stderr
    assert "agentcap run stopped: interrupted" in stderr and "Traceback" not in stderr
    run = runs / "stopped"
    [call] = records(run)
    assert (call["task_id"], call["turn"], call["response"]["status_code"]) == ("task-01", 1, 200)
    info = agent_run(run)
    assert info["status"] == "interrupted"
    [task] = info["tasks"]
    assert task["status"] == "interrupted"
    assert [turn["status"] for turn in task["turns"]] == ["interrupted"]  # turn 2 never started
    assert "Done." in (run / task["turns"][0]["stdout"]).read_text()
    assert json.loads((run / "run.json").read_text())["status"] == "complete"  # the proxy finished it
    assert processes_running(script) == []


AGENT_ONE_CALL = """
import json, os, sys, urllib.request
json.dump(dict(os.environ), open(os.path.join(os.environ["HOME"], "env.json"), "w"))
request = urllib.request.Request(
    os.environ["AGENTCAP_TEST_TARGET"] + "/v1/chat/completions",
    data=json.dumps({"model": "m", "messages": [{"role": "user", "content": sys.argv[1]}]}).encode(),
    headers={"Authorization": "Bearer " + os.environ["OPENAI_API_KEY"], "Content-Type": "application/json"},
)
print(urllib.request.urlopen(request).read().decode())
"""


def test_regular_mode_proxies_the_agent_with_the_ca_and_swaps_the_key(
    upstream: FakeModelServer, tmp_path: Path
) -> None:
    script = tmp_path / "one_call.py"
    script.write_text(AGENT_ONE_CALL)
    runs, home = tmp_path / "runs", tmp_path / "home"
    before = len(upstream.seen)
    result = agentcap_run(
        *("--mode", "regular", "--upstream", upstream.url, "--prompt", "hi", "--runs-dir", str(runs)),
        *("--run-id", "regular", "--home", str(home), "--", sys.executable, str(script)),
        cwd=tmp_path,
        # The agent calls the upstream's own URL (as one that cannot change it would); HTTP_PROXY routes it.
        env=user_env(OPENAI_API_KEY=CANARY_KEY, AGENTCAP_TEST_TARGET=upstream.url),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    [call] = records(runs / "regular")
    assert (call["url"], call["task_id"], call["turn"]) == (
        upstream.url + "/v1/chat/completions",
        "task-01",
        1,
    )
    [seen] = upstream.seen[before:]
    assert seen["headers"]["authorization"] == f"Bearer {CANARY_KEY}"
    env = json.loads((home / "task-01" / "env.json").read_text())
    proxy = agent_run(runs / "regular")["proxy"]
    assert env["HTTPS_PROXY"] == env["HTTP_PROXY"] == proxy
    assert Path(env["SSL_CERT_FILE"]).is_file() and env["NODE_EXTRA_CA_CERTS"] == env["SSL_CERT_FILE"]
    assert env["OPENAI_API_KEY"].startswith("agentcap-placeholder-")
    assert files_holding(tmp_path, CANARY_KEY) == []


AGENT_BY_PROMPT = """
import sys, time
if sys.argv[1] == "hang":
    time.sleep(600)
print("failing on purpose", file=sys.stderr)
sys.exit(3)
"""


def test_a_timed_out_turn_ends_its_task_and_failed_turns_fail_the_run(
    upstream: FakeModelServer, tmp_path: Path
) -> None:
    script = tmp_path / "by_prompt.py"
    script.write_text(AGENT_BY_PROMPT)
    tasks = tmp_path / "tasks.txt"
    tasks.write_text("# one that hangs, one that fails\nhang\n\nfail\n")
    runs = tmp_path / "runs"
    result = agentcap_run(
        *("--upstream", upstream.url, "--no-key", "--tasks", str(tasks), "--turns", "2", "--timeout", "1"),
        *("--runs-dir", str(runs), "--run-id", "bad-turns", "--", sys.executable, str(script)),
        cwd=tmp_path,
        env=user_env(),
    )
    assert result.returncode == 1, result.stderr
    assert "2 turn(s) failed or timed out" not in result.stderr  # 1 timeout + 2 failed = 3
    assert "3 turn(s) failed or timed out: see sessions/task-01_turn_01.err" in result.stderr
    info = agent_run(runs / "bad-turns")
    assert info["status"] == "complete"
    hang, fail = info["tasks"]
    assert (hang["status"], [(t["status"], t["exit_code"]) for t in hang["turns"]]) == (
        "timeout",
        [("timeout", -15)],  # SIGTERM ended it; turn 2 was not run
    )
    assert 1 <= hang["turns"][0]["duration_s"] < 5
    assert (fail["status"], [(t["status"], t["exit_code"]) for t in fail["turns"]]) == (
        "complete",
        [("failed", 3), ("failed", 3)],
    )
    assert (runs / "bad-turns" / "sessions" / "task-02_turn_02.err").read_text() == "failing on purpose\n"
    assert fail["turns"][1]["argv"][-1] == "Continue."
    assert processes_running(script) == []


def test_a_dying_proxy_stops_the_agent_and_the_run(upstream: FakeModelServer, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    process, script = start_hanging_run(
        upstream, tmp_path, "proxy-died", stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    [mitmdump] = [
        child for child in psutil.Process(process.pid).children() if "mitmdump" in " ".join(child.cmdline())
    ]
    mitmdump.kill()
    _, stderr = process.communicate(timeout=60)

    assert process.returncode == 1, stderr
    assert "Error: the capture proxy exited unexpectedly" in stderr and "proxy.log" in stderr
    assert "Traceback" not in stderr
    info = agent_run(runs / "proxy-died")
    assert info["status"] == "proxy_failed"
    assert [turn["status"] for turn in info["tasks"][0]["turns"]] == ["proxy_failed"]
    assert processes_running(script) == []


def test_a_killed_agentcap_run_takes_its_proxy_and_agent_with_it(
    upstream: FakeModelServer, tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    process, _ = start_hanging_run(
        upstream, tmp_path, "orphans", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    children = psutil.Process(process.pid).children(recursive=True)
    assert any("mitmdump" in " ".join(child.cmdline()) for child in children)
    process.kill()
    process.wait()

    _, alive = psutil.wait_procs(children, timeout=30)
    for straggler in alive:
        straggler.kill()
    assert alive == []
    # The proxy got SIGINT, not SIGKILL: the addon finished run.json.
    assert json.loads((runs / "orphans" / "run.json").read_text())["status"] == "complete"
    assert len(records(runs / "orphans")) == 1


def test_a_proxy_that_cannot_start_is_one_line_naming_its_error(
    upstream: FakeModelServer, tmp_path: Path
) -> None:
    settings = ProxySettings(
        mode="reverse",
        upstream=upstream.url,
        port=0,
        runs_dir=tmp_path / "runs",
        run_id="never",
        agent="generic",
        record_paths=("(unbalanced",),
        key_handover=None,
        log_path=tmp_path / "proxy.log",
    )
    proxy = Proxy(settings, env=user_env(), on_unexpected_exit=lambda: None)
    with pytest.raises(AbortRun) as failure:
        proxy.start()
    assert "the capture proxy did not start:" in failure.value.message
    assert "agentcap_paths: invalid regular expression" in failure.value.message
    assert proxy.exit_code is not None


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield listener.getsockname()[1]


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("unknown agent", "unknown agent 'nope': use one of pi, opencode, codex"),
        ("unreachable upstream", "cannot reach the upstream http://127.0.0.1:"),
        ("missing key variable", "OPENAI_API_KEY is not set: export the upstream API key in it"),
        ("command not found", "command not found: no-such-agent-cli; install the agent"),
        ("port in use", "on 127.0.0.1 is in use; pick another --port"),
        ("upstream with a path", "give scheme://host[:port] only"),
        ("model missing", "--model is required for pi"),
        ("tasks not json", "tasks.jsonl:2: not JSON"),
    ],
)
def test_bad_input_is_one_line_and_leaves_nothing_behind(
    case: str,
    expected: str,
    upstream: FakeModelServer,
    busy_port: int,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", CANARY_KEY)
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text('{"prompt": "one"}\n{"prompt": "two"\n')
    runs = tmp_path / "runs"
    args = [
        "--agent",
        "pi",
        "--model",
        "m",
        "--upstream",
        upstream.url,
        "--prompt",
        "hi",
        "--runs-dir",
        str(runs),
    ]
    command = ["--", sys.executable]
    if case == "unknown agent":
        args[1] = "nope"
    elif case == "unreachable upstream":
        args[5] = f"http://127.0.0.1:{closed_port()}"
    elif case == "missing key variable":
        monkeypatch.delenv("OPENAI_API_KEY")
    elif case == "command not found":
        command = ["--", "no-such-agent-cli"]
    elif case == "port in use":
        args += ["--port", str(busy_port)]
    elif case == "upstream with a path":
        args[5] = upstream.url + "/api/v2"
    elif case == "model missing":
        args[2:4] = []
    elif case == "tasks not json":
        args[-4:-2] = ["--tasks", str(tasks)]

    result = CliRunner().invoke(run_command, args + command)

    assert result.exit_code == 2, result.output
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    assert expected in lines[0]
    assert not runs.exists()
    assert CANARY_KEY not in result.output
