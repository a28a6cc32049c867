"""Helpers for the secret-scan tests: synthetic canary secrets and a fake `trufflehog` on PATH.

The canaries are assembled from pieces at runtime, so no file in the repository holds a
secret-shaped literal for a scanner (or push protection) to flag; each carries "FAKEcanary".

The fake trufflehog is a small Python script behaving like `trufflehog filesystem --json`: it
really reads the paths it is given and reports every line holding one of the scenario's secrets
(JSON finding lines on stdout, the `finished scanning` summary on stderr, exit 183 with --fail).
A scenario `mode` makes it misbehave: crash, garbage, no-stats, lying-exit, v2, cut-large (reads
only the first `cut_over` bytes of a file, as trufflehog's per-file time limit does, and reports
success), hang (when its file is named `hang_on`: says so through the FIFO in FAKE_TRUFFLEHOG_READY,
then never finishes, so a test can kill the export mid-scan).
"""

from __future__ import annotations

import json
import random
import string
import sys
from pathlib import Path

import pytest

TRUFFLEHOG_VERSION = "3.90.1"


def canary_secrets(seed: int = 20261121) -> dict[str, str]:
    """Fake tokens in the shapes of GitHub, Hugging Face and Slack credentials."""
    rng = random.Random(seed)

    def pick(count: int, alphabet: str = string.ascii_letters + string.digits) -> str:
        return "".join(rng.choice(alphabet) for _ in range(count))

    return {
        "github": "gh" + "p_" + "FAKEcanary" + pick(26),
        "huggingface": "h" + "f_" + "FAKEcanary" + pick(24, string.ascii_letters),
        "slack": "xo"
        + "xb-"
        + pick(12, string.digits)
        + "-"
        + pick(13, string.digits)
        + "-FAKEcanary"
        + pick(14),
    }


_FAKE_TRUFFLEHOG = r"""
import json, os, sys

scenario = json.loads(os.environ["FAKE_TRUFFLEHOG_SCENARIO"])
log = os.environ.get("FAKE_TRUFFLEHOG_LOG")
if log:
    with open(log, "a") as handle:
        handle.write(json.dumps(sys.argv[1:]) + "\n")
mode = scenario.get("mode", "normal")
version = "2.2.1" if mode == "v2" else scenario.get("version", "3.90.1")
if sys.argv[1:] == ["--version"]:
    sys.stderr.write(f"trufflehog {version}\n")
    sys.exit(0)
if mode == "crash":
    sys.stderr.write("panic: runtime error: invalid memory address or nil pointer dereference\n")
    sys.exit(2)
paths = [arg for arg in sys.argv[2:] if not arg.startswith("-")]
if mode == "hang" and any(os.path.basename(path) == scenario["hang_on"] for path in paths):
    with open(os.environ["FAKE_TRUFFLEHOG_READY"], "w") as ready:
        ready.write(f"{os.getpid()}\n")
    import signal
    while True:
        signal.pause()

files = []
for path in paths:
    if os.path.isdir(path):
        files += sorted(os.path.join(top, name) for top, _, names in os.walk(path) for name in names)
    else:
        files.append(path)
verify = "--no-verification" not in sys.argv
cut = scenario.get("cut_over") if mode == "cut-large" else None
findings, total = [], 0
for file in files:
    with open(file, "rb") as handle:
        data = handle.read(cut) if cut else handle.read()
    total += len(data)
    for number, line in enumerate(data.decode("utf-8", "replace").splitlines(), start=1):
        for secret, spec in scenario.get("secrets", {}).items():
            if secret in line:
                findings.append({
                    "SourceMetadata": {"Data": {"Filesystem": {"file": file, "line": number}}},
                    "SourceID": 1, "SourceType": 15, "SourceName": "trufflehog - filesystem",
                    "DetectorType": spec.get("type", 926), "DetectorName": spec["detector"],
                    "DetectorDescription": "fake", "DecoderName": "PLAIN",
                    "Verified": bool(verify and spec.get("verified")),
                    "VerificationError": spec.get("verification_error", "") if verify else "",
                    "VerificationFromCache": False,
                    "Raw": spec.get("raw", secret), "RawV2": "", "Redacted": "", "ExtraData": None, "StructuredData": None,
                })
if mode == "garbage":
    print("this is not json {")
for finding in findings:
    print(json.dumps(finding))
if mode == "dies-after-findings":
    sys.exit(1)  # no stderr at all: only its stdout (findings, raw secrets) could explain it
verified = sum(1 for finding in findings if finding["Verified"])
stats = {"level": "info-0", "logger": "trufflehog", "msg": "finished scanning", "chunks": len(files),
         "bytes": total, "verified_secrets": verified, "unverified_secrets": len(findings) - verified,
         "scan_duration": "1.2ms", "trufflehog_version": version, "verification_caching": {}}
if mode != "no-stats":
    sys.stderr.write("2026-11-21T08:15:00Z\tinfo-0\ttrufflehog\trunning source\t{}\n")
    prefix = "2026-11-21T08:15:01Z\tinfo-0\ttrufflehog\tfinished scanning\t"
    sys.stderr.write(prefix + json.dumps(stats) + "\n")
if mode == "lying-exit":
    sys.exit(0)
sys.exit(183 if findings and "--fail" in sys.argv else 0)
"""


class FakeTrufflehog:
    """Installs the fake first on PATH; `scenario(...)` sets what it reports, `calls()` what it was asked."""

    def __init__(self, bin_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.log = bin_dir / "trufflehog-calls.jsonl"
        self._monkeypatch = monkeypatch
        script = bin_dir / "trufflehog"
        script.write_text(f"#!{sys.executable}\n{_FAKE_TRUFFLEHOG}")
        script.chmod(0o755)
        monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
        monkeypatch.setenv("FAKE_TRUFFLEHOG_LOG", str(self.log))
        monkeypatch.setenv("AGENTCAP_SCANNER", "trufflehog")  # kingfisher is the default scanner
        self.scenario()

    def scenario(
        self, secrets: dict[str, dict[str, object]] | None = None, *, mode: str = "normal", **extra: object
    ) -> None:
        """`secrets`: text to find → {"detector", "verified", "verification_error", "raw" (reported instead)}."""
        self._monkeypatch.setenv(
            "FAKE_TRUFFLEHOG_SCENARIO", json.dumps({"secrets": secrets or {}, "mode": mode, **extra})
        )

    def calls(self) -> list[list[str]]:
        """argv of every scan (not the --version probes)."""
        if not self.log.exists():
            return []
        calls = [json.loads(line) for line in self.log.read_text().splitlines()]
        return [argv for argv in calls if argv != ["--version"]]
