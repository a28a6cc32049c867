"""A real S3 server for tests: moto's server mode as a child process on 127.0.0.1, and the env that
points fsspec/s3fs (through botocore's own settings) at it. Nothing is mocked in the client."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import fsspec

MOTO_SERVER = Path(sys.executable).parent / "moto_server"
START_TIMEOUT_S = 60


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def s3_env(endpoint: str) -> dict[str, str]:
    """Credentials and endpoint as any S3 user sets them: env read by botocore (under s3fs)."""
    return {
        "AWS_ACCESS_KEY_ID": "test-access-key",
        "AWS_SECRET_ACCESS_KEY": "test-secret-key",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL_S3": endpoint,
    }


@contextmanager
def moto_server(*, authenticated: bool = False) -> Iterator[str]:
    """Start `moto_server` on a free loopback port; yields its endpoint URL; stops it after.

    `authenticated`: requests must carry keys of a user the server knows (none exist), so every
    request is refused as unauthorised: an S3 bucket we have no access to.
    """
    port = free_port()
    env = {**os.environ}
    if authenticated:
        env["INITIAL_NO_AUTH_ACTION_COUNT"] = "0"
    process = subprocess.Popen(
        [str(MOTO_SERVER), "-H", "127.0.0.1", "-p", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    serving = threading.Event()

    def drain() -> None:  # werkzeug says when it listens, then logs every request: keep the pipe empty
        assert process.stderr is not None
        for line in process.stderr:
            if "Running on" in line:
                serving.set()
        serving.set()  # exited: stop waiting, the check below reports it

    threading.Thread(target=drain, daemon=True).start()
    try:
        if not serving.wait(START_TIMEOUT_S) or process.poll() is not None:
            raise RuntimeError(f"moto_server did not start on 127.0.0.1:{port}")
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=30)


def make_bucket(endpoint: str, bucket: str) -> None:
    os.environ.update(s3_env(endpoint))
    fsspec.filesystem("s3", skip_instance_cache=True).mkdir(bucket)
