"""Issue 11, finding 3: `--redact` leaves no secret in anything a consumer can reconstruct.

Real kingfisher (offline), the real CLI, runs in the documented capture format, one captured
through the real proxy from the loopback fake model server. Every file the export wrote is read
back the way a consumer would: parquet cells parsed as JSON, base64 bodies decoded, streamed
deltas joined; no canary may be left in any of it, nor in the report, the logs or the temp dir.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner, Result
from factories import CANARY_KEY, make_record, sse_chat_stream, write_run
from fake_model_server import FakeModelServer
from proxy_harness import ProxyHarness
from scan_fakes import canary_secrets

from exporter.export.command import export_command
from exporter.scan.command import scan_command

KINGFISHER = Path(sys.executable).parent / "kingfisher"
OFFLINE = ["--scanner", "kingfisher", "--no-verify"]
GITHUB = canary_secrets()["github"]
# Shapes kingfisher does not flag on their own: only exact-value redaction catches them.
OPENAI_KEY = CANARY_KEY
AWS_KEY_ID = "AKIA" + "FAKECANARY" + "7Q2XZ4"
AWS_SECRET = "FAKEcanary" + "/wJalrXUtnFEMIK7MDENG/bPxRfiCY0000"
LISTED = "corp-vault-passphrase-" + "FAKEcanary-4242"
CANARIES = (GITHUB, OPENAI_KEY, AWS_KEY_ID, AWS_SECRET, LISTED)

pytestmark = pytest.mark.skipif(not KINGFISHER.exists(), reason="kingfisher-bin is not installed")


# --- a consumer's view of what was published -----------------------------------------------------


def reconstructed(value: Any) -> Iterator[str]:
    """Every text a consumer can rebuild from a JSON value, written independently of the exporter."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key in ("body_base64", "raw_base64") and isinstance(item, str):
                yield base64.b64decode(item).decode("utf-8", "replace")
            yield from reconstructed(item)
    elif isinstance(value, list):
        for item in value:
            yield from reconstructed(item)
    elif isinstance(value, str):
        yield value
        with contextlib.suppress(ValueError):
            yield from reconstructed(json.loads(value))
        if "data:" in value:
            deltas = []
            for line in value.splitlines():
                if line.startswith("data:") and line[5:].strip() not in ("", "[DONE]"):
                    try:
                        event = json.loads(line[5:])
                    except ValueError:
                        continue
                    for choice in event.get("choices") or []:
                        deltas.append((choice.get("delta") or {}).get("content") or "")
            yield "".join(deltas)


def published_texts(output: Path) -> dict[str, str]:
    texts = {}
    for path in sorted(output.rglob("*")):
        if not path.is_file():
            continue
        if path.suffix == ".parquet":
            parquet = pq.ParquetFile(path)
            values: list[Any] = [v.decode() for k, v in (parquet.metadata.metadata or {}).items()]
            values += parquet.read().to_pylist()
            texts[str(path)] = "\n".join(reconstructed(values))
        else:
            raw = path.read_bytes().decode("utf-8", "replace")
            texts[str(path)] = "\n".join([raw, *reconstructed(raw)])
    return texts


def assert_no_canary(texts: dict[str, str], *canaries: str) -> None:
    for where, text in texts.items():
        for canary in canaries:
            assert canary not in text, f"{canary[:8]}… survived in {where}"


# --- runs holding every form of finding 3 ---------------------------------------------------------


def split_stream(secret: str) -> str:
    """A chat stream whose reply carries `secret` cut in two deltas (as models stream tokens)."""
    middle = len(secret) // 2
    raw = sse_chat_stream("here it is:")
    events = raw.split("\n\n")
    pieces = [
        {"id": "c1", "model": "m", "choices": [{"index": 0, "delta": {"content": part}}]}
        for part in (" " + secret[:middle], secret[middle:] + " (from your .env)")
    ]
    return "\n\n".join(events[:-3] + [f"data: {json.dumps(piece)}" for piece in pieces] + events[-3:])


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    runs = tmp_path / "runs"
    base64_body = make_record(seq=1)
    base64_body["request"] = base64_body["request"] | {
        "body": None,
        "body_base64": base64.b64encode(b"\xff\xfe binary upload; token=" + GITHUB.encode()).decode(),
    }
    del base64_body["request"]["body"]
    streamed = make_record(seq=2, stream=True)
    streamed["response"]["raw"] = split_stream(GITHUB)
    escaped = make_record(seq=3, messages=[{"role": "user", "content": f"use {GITHUB} please"}])
    assignment = make_record(
        seq=4,
        messages=[
            {"role": "user", "content": "show me the env"},
            {"role": "tool", "content": f"OPENAI_API_KEY={OPENAI_KEY}\nHOME=/root"},
        ],
    )
    aws = make_record(
        seq=5,
        messages=[
            {
                "role": "tool",
                "content": f"[default]\naws_access_key_id = {AWS_KEY_ID}\naws_secret_access_key = {AWS_SECRET}\n",
            }
        ],
    )
    trace = json.dumps({"type": "tool_result", "output": f"vault: {LISTED}"}) + "\n"
    run = write_run(
        runs,
        "demo-20261121T081500-a1b2c3",
        [base64_body, streamed, escaped, assignment, aws],
        traces={"session.jsonl": trace},
    )
    # JSON lets any character be written as \\uXXXX; an agent's JSON encoder may do it for `_`.
    lines = (run / "captures.jsonl").read_text().splitlines()
    lines[2] = lines[2].replace(GITHUB, GITHUB.replace("_", "\\u005f"))
    assert GITHUB not in lines[2]
    (run / "captures.jsonl").write_text("\n".join(lines) + "\n")
    return runs


@pytest.fixture
def machine_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The exporting machine's own credentials, as environment variables."""
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", AWS_KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", AWS_SECRET)
    monkeypatch.setenv("AWS_REGION", "eu-west-3")  # not a credential: never replaced


@pytest.fixture
def values_file(tmp_path: Path) -> Path:
    listed = tmp_path / "secrets.txt"
    listed.write_text(f"# one value per line\n{LISTED}\n")
    return listed


@pytest.fixture
def system_temp(tmp_path: Path) -> Iterator[Path]:
    directory = tmp_path / "system-tmp"
    directory.mkdir()
    saved, tempfile.tempdir = tempfile.tempdir, str(directory)
    yield directory
    tempfile.tempdir = saved


def export(*args: str) -> Result:
    return CliRunner().invoke(export_command, [*args, *OFFLINE], env={"COLUMNS": "400"})


# --- tests -----------------------------------------------------------------------------------------


@pytest.mark.usefixtures("machine_env")
def test_redact_leaves_no_canary_in_anything_a_consumer_reconstructs(
    runs: Path, tmp_path: Path, values_file: Path, system_temp: Path
) -> None:
    output = tmp_path / "export"

    result = export(
        str(runs), "-o", str(output), "--redact", "--redact-values", str(values_file), "--rollouts"
    )

    assert result.exit_code == 0, result.output
    texts = published_texts(output)
    assert_no_canary(texts, *CANARIES)
    assert_no_canary({"stdout": result.stdout, "stderr": result.stderr}, *CANARIES)
    assert list(system_temp.iterdir()) == []
    assert not list(output.glob(".agentcap-staging-*"))
    # What replaced them says what they were, and the rest of the data is intact.
    captures = "\n".join(text for path, text in texts.items() if "agentcap-captures/data" in path)
    assert "[REDACTED:env-OPENAI_API_KEY:" in captures and "[REDACTED:env-AWS_SECRET_ACCESS_KEY:" in captures
    assert "[REDACTED:betterleaks.github-pat:" in captures
    traces = "\n".join(text for path, text in texts.items() if "traces/" in path)
    assert "[REDACTED:redact-values:" in traces
    rows = [
        row
        for parquet in (output / "local" / "agentcap-captures" / "data").glob("*.parquet")
        for row in pq.read_table(parquet).to_pylist()
    ]
    assert sorted(row["seq"] for row in rows) == [1, 2, 3, 4, 5]
    [streamed] = [json.loads(row["response"]) for row in rows if row["seq"] == 2]
    assert "(from your .env)" in "\n".join(reconstructed(streamed["raw"]))  # the rest of the reply stays
    report = json.loads((output / "local" / "scan-report.json").read_text())
    assert report["decision"] == "redacted" and report["redaction"]["rescan"] == "clean"
    # The run itself is never modified.
    assert (
        GITHUB.replace("_", "\\u005f")
        in (runs / "demo-20261121T081500-a1b2c3" / "captures.jsonl").read_text()
    )


@pytest.mark.usefixtures("machine_env")
def test_without_redact_every_decoded_form_blocks_the_export(runs: Path, tmp_path: Path) -> None:
    output = tmp_path / "export"

    result = export(str(runs), "-o", str(output), "--block-on", "verified")

    assert result.exit_code == 1, result.output
    assert "secret scan blocked the export" in result.stderr
    assert [path.name for path in output.rglob("*") if path.is_file()] == ["scan-report.json"]
    report = json.loads((output / "local" / "scan-report.json").read_text())
    found = {
        (finding["detector"], finding["file"], finding["line"]) for finding in report["runs"][0]["findings"]
    }
    # The credentials of this machine block even when only verified hits do.
    assert ("env:OPENAI_API_KEY", "captures.jsonl", 4) in found
    assert ("env:AWS_SECRET_ACCESS_KEY", "captures.jsonl", 5) in found
    # Seen only once decoded: base64 body (line 1), split stream (line 2), JSON escapes (line 3).
    github = {line for detector, file, line in found if detector == "betterleaks.github-pat"}
    assert {1, 2, 3} <= github
    assert_no_canary({"report": json.dumps(report), "stderr": result.stderr}, *CANARIES)


def test_scan_reports_decoded_forms_standalone(runs: Path, system_temp: Path) -> None:
    result = CliRunner().invoke(scan_command, [str(runs), *OFFLINE, "--json"])

    assert result.exit_code == 1, result.output
    assert list(system_temp.iterdir()) == []  # its decoded views (private, 0700) are gone
    assert_no_canary({"stdout": result.stdout, "stderr": result.stderr}, *CANARIES)
    lines = {
        finding["line"]
        for finding in json.loads(result.stdout)["runs"][0]["findings"]
        if finding["detector"] == "betterleaks.github-pat"
    }
    assert {1, 2, 3} <= lines


def test_a_values_file_with_a_too_short_value_is_refused(runs: Path, tmp_path: Path) -> None:
    listed = tmp_path / "secrets.txt"
    listed.write_text("abc\n")

    result = export(str(runs), "-o", str(tmp_path / "export"), "--redact", "--redact-values", str(listed))

    assert result.exit_code == 2
    assert "secrets.txt:1: a value shorter than 8 characters" in result.stderr


def test_the_key_echoed_back_by_the_upstream_is_redacted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, system_temp: Path
) -> None:
    runs = tmp_path / "runs"
    with FakeModelServer() as upstream, ProxyHarness(upstream.url, runs) as proxy:
        for scenario in ("echo", ""):
            connection = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=30)
            body = {
                "model": "gpt-test",
                "messages": [{"role": "user", "content": "hi"}],
                "stream": not scenario,
            }
            headers = {"content-type": "application/json", "authorization": f"Bearer {OPENAI_KEY}"}
            connection.request(
                "POST", "/v1/chat/completions", json.dumps(body), headers | {"x-fake-scenario": scenario}
            )
            assert connection.getresponse().read()
            connection.close()
    # The addon masked the header; the upstream's echo of it is in the response body, verbatim.
    assert OPENAI_KEY in (proxy.run_dirs()[0] / "captures.jsonl").read_text()
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
    output = tmp_path / "export"

    result = export(str(runs), "-o", str(output), "--redact", "--rollouts")

    assert result.exit_code == 0, result.output
    assert_no_canary(published_texts(output), OPENAI_KEY)
    assert_no_canary({"stderr": result.stderr, "stdout": result.stdout}, OPENAI_KEY)
    assert list(system_temp.iterdir()) == []


def test_a_prompt_preview_never_ends_in_part_of_a_secret(tmp_path: Path) -> None:
    # The footer keeps a 200-character preview of each task's first prompt; cut inside a token,
    # it would publish a piece no exact replacement can find.
    prompt = "a" * 180 + " " + GITHUB + " is my token"
    runs = tmp_path / "runs"
    write_run(runs, "r1", [make_record(messages=[{"role": "user", "content": prompt}])])
    output = tmp_path / "export"

    result = export(str(runs), "-o", str(output), "--redact")

    assert result.exit_code == 0, result.output
    [parquet] = (output / "local" / "agentcap-captures" / "data").glob("*.parquet")
    [task] = json.loads(pq.ParquetFile(parquet).metadata.metadata[b"tasks"])
    assert task["prompt"] == "a" * 180
    assert_no_canary(published_texts(output), GITHUB[:12])
