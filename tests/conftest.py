"""Shared test set-up: scripts/ on sys.path (fake model server) and quiet, offline huggingface_hub."""

import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from fake_hub import FakeHub
    from scan_fakes import FakeTrufflehog

ROOT = Path(__file__).resolve().parent.parent
for extra in (ROOT / "scripts", ROOT / "tests"):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))

os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("HF_HUB_DISABLE_UPDATE_CHECK", "1")
os.environ.setdefault("HF_HUB_DISABLE_XET", "1")


@pytest.fixture
def refused_endpoint() -> Iterator[str]:
    """A loopback URL whose port refuses connections: bound, never listening."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator["FakeHub"]:
    """A loopback fake Hub that HfApi, hf_hub_download and the CLI reach via HF_ENDPOINT / HF_TOKEN."""
    from fake_hub import FakeHub, use_fake_hub

    with FakeHub() as fake:
        use_fake_hub(monkeypatch, fake, tmp_path / "hf-home")
        yield fake


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> "FakeTrufflehog":
    """A fake trufflehog first on PATH and selected as the scanner (tests/scan_fakes.py)."""
    from scan_fakes import FakeTrufflehog

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    return FakeTrufflehog(bin_dir, monkeypatch)
