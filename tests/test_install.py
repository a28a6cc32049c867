"""Installing agentcap the way a user does: the lock agrees with pyproject, and the wheel alone records.

The wheel is built from this checkout, installed into a fresh venv (locked runtime dependencies, no
dev extras, no editable path), and run from a directory outside the repository: the addon it ships
records a plain and a streamed call through a real mitmdump, and its agentcap-export publishes them.
"""

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from factories import CANARY_KEY
from fake_model_server import FakeModelServer
from helpers import wait_for

ROOT = Path(__file__).resolve().parent.parent
UV = shutil.which("uv", path=str(Path(sys.executable).parent)) or "uv"


def uv(*args: str, cwd: Path = ROOT, env: dict[str, str] | None = None) -> str:
    completed = subprocess.run(
        [UV, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, "UV_PYTHON_DOWNLOADS": "never", "UV_PYTHON": sys.executable, **(env or {})},
        timeout=600,
    )
    assert completed.returncode == 0, completed.stderr
    return completed.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """bin/ of a fresh venv holding only the built wheel and its locked runtime dependencies."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "source"
    # Build from the committed files only (a copy), as CI's clean checkout would.
    tracked = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, tracked):
        target = source / name.decode()
        if (ROOT / name.decode()).is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name.decode(), target)
    uv("build", "--wheel", "--out-dir", str(work / "dist"), str(source))
    [wheel] = (work / "dist").glob("agentcap-*.whl")
    requirements = work / "requirements.txt"
    uv("export", "--frozen", "--no-dev", "--no-emit-project", "--output-file", str(requirements))
    venv = work / "venv"
    uv("venv", "--python", sys.executable, str(venv), cwd=work)
    python = str(venv / "bin" / "python")
    uv("pip", "install", "--python", python, "--require-hashes", "-r", str(requirements), cwd=work)
    uv("pip", "install", "--python", python, "--no-deps", str(wheel), cwd=work)
    yield venv / "bin"


def run_installed(bin_dir: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    # No PYTHONPATH and a cwd outside the checkout: only what the wheel installed can be imported.
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env['PATH']}"
    return subprocess.run(
        [str(bin_dir / args[0]), *args[1:]], cwd=cwd, capture_output=True, text=True, env=env, timeout=300
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def post(port: int, path: str, body: dict) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.request(
        "POST",
        path,
        json.dumps(body),
        {"content-type": "application/json", "authorization": f"Bearer {CANARY_KEY}"},
    )
    response = connection.getresponse()
    data = response.read()
    connection.close()
    return response.status, data


def test_lock_check_fails_when_pyproject_gains_a_dependency(tmp_path: Path) -> None:
    for name in ("pyproject.toml", "uv.lock", "setup.py", "README.md"):
        shutil.copy2(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "addons", tmp_path / "addons")
    uv("lock", "--check", "--offline", cwd=tmp_path)  # the committed pair agrees
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text().replace("dependencies = [\n", 'dependencies = [\n    "six>=1",\n', 1)
    )
    completed = subprocess.run(
        ["bash", "-c", f'source "{ROOT}/scripts/_env.sh"; check_lock "{tmp_path}"'],
        capture_output=True,
        text=True,
    )
    assert completed.returncode == 1
    assert (
        completed.stderr.strip()
        == "uv.lock does not match pyproject.toml: run scripts/lock.sh and commit uv.lock"
    )


def test_the_wheel_alone_records_and_exports(installed: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "user"
    elsewhere.mkdir()
    addon = run_installed(installed, "agentcap", "addon-path", cwd=elsewhere)
    assert addon.returncode == 0, addon.stderr
    addon_file = Path(addon.stdout.strip())
    assert addon_file.is_relative_to(installed.parent) and not addon_file.is_relative_to(ROOT)
    assert addon_file.read_text() == (ROOT / "addons" / "agentcap.py").read_text()

    runs = elsewhere / "runs"
    port = free_port()
    with FakeModelServer() as upstream:
        proxy = subprocess.Popen(
            [
                str(installed / "mitmdump"),
                *("-q", "-s", str(addon_file), "--mode", f"reverse:{upstream.url}"),
                *("--listen-host", "127.0.0.1", "-p", str(port)),
                *("--set", f"agentcap_dir={runs}", "--set", "agentcap_run=wheel-run"),
            ],
            cwd=elsewhere,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_for(lambda: proxy_listening(proxy, port), timeout=30, what="mitmdump to listen")
            messages = [{"role": "user", "content": "hello"}]
            plain = post(port, "/v1/chat/completions", {"model": "gpt-wheel", "messages": messages})
            streamed = post(
                port, "/v1/chat/completions", {"model": "gpt-wheel", "messages": messages, "stream": True}
            )
        finally:
            proxy.send_signal(signal.SIGINT)
            output, _ = proxy.communicate(timeout=60)
    assert plain[0] == 200 and json.loads(plain[1])["object"] == "chat.completion"
    assert streamed[0] == 200 and streamed[1].endswith(b"data: [DONE]\n\n")
    assert b"Traceback" not in output
    run_json = json.loads((runs / "wheel-run" / "run.json").read_text())
    assert (run_json["status"], run_json["counts"]["recorded"]) == ("complete", 2)

    exported = run_installed(
        installed, "agentcap-export", "--all", "--runs-dir", str(runs), "--no-verify", cwd=elsewhere
    )
    assert exported.returncode == 0, exported.stderr
    [parquet] = (elsewhere / "export").rglob("*.parquet")
    table = pq.read_table(parquet)
    assert sorted(table.column("stream").to_pylist()) == [False, True]
    for path in [*runs.rglob("*"), *(elsewhere / "export").rglob("*")]:
        if path.is_file():
            assert CANARY_KEY.encode() not in path.read_bytes(), path


def test_one_version_everywhere_and_both_entry_points_take_h_and_version() -> None:
    from proxy_harness import load_addon_module

    version = load_addon_module().ADDON_VERSION
    bin_dir = Path(sys.executable).parent
    for command in ("agentcap", "agentcap-export"):
        shown = subprocess.run([bin_dir / command, "--version"], capture_output=True, text=True, check=True)
        assert shown.stdout.strip() == f"{command}, version {version}"
        helped = subprocess.run([bin_dir / command, "-h"], capture_output=True, text=True)
        assert helped.returncode == 0 and helped.stdout.startswith(f"Usage: {command} ")
    assert (
        'mitmdump -s "$(agentcap addon-path)"'
        in subprocess.run([bin_dir / "agentcap", "-h"], capture_output=True, text=True, check=True).stdout
    )


def proxy_listening(proxy: subprocess.Popen[bytes], port: int) -> bool:
    assert proxy.poll() is None, "mitmdump exited before it listened"
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True
