"""`agentcap report`: one self-contained HTML file whose numbers are `stats`'s, whose calls are
`inspect`'s, and in which every secret the scanner finds is masked (the browser test is
test_report_browser.py)."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from factories import CANARY_KEY, conversation_run, export_parquet, make_record, write_run
from fake_hub import FakeHub
from scan_fakes import canary_secrets

from exporter.inspect.command import inspect_command
from exporter.report.command import NOT_SCANNED, report_command
from exporter.shared import totals_display as display
from exporter.stats.command import stats_command

KINGFISHER = Path(sys.executable).parent / "kingfisher"
needs_kingfisher = pytest.mark.skipif(not KINGFISHER.exists(), reason="kingfisher-bin is not installed")


def write_report(*args: str, env: dict[str, str] | None = None) -> tuple[str, str]:
    result = CliRunner(env=env).invoke(report_command, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    output = Path(args[args.index("-o") + 1])
    return output.read_text(encoding="utf-8"), result.stderr


def card_value(page: str, label: str) -> str:
    match = re.search(rf'<div class="card[^"]*"><span>{label}</span><b>([^<]*)</b>', page)
    assert match, label
    return match.group(1)


@pytest.fixture
def run(tmp_path: Path) -> Path:
    run_dir, _ = conversation_run(tmp_path / "runs")
    return run_dir


def test_self_contained_and_the_numbers_are_stats_numbers(run: Path, tmp_path: Path) -> None:
    page, stderr = write_report(str(run), "-o", str(tmp_path / "r.html"), "--no-scan")
    assert NOT_SCANNED in stderr and NOT_SCANNED in page
    # Nothing is fetched: no external URL in any src/href, a CSP that forbids loading anything.
    assert not re.search(r'(src|href)="(https?:)?//', page)
    assert "default-src 'none'" in page and "<script>" in page and "<style>" in page
    stats = json.loads(CliRunner().invoke(stats_command, [str(run), "--json"]).output)["total"]
    assert card_value(page, "calls") == str(stats["calls"])
    assert card_value(page, "failed") == str(stats["failed"])
    assert card_value(page, "input tokens") == display.tokens(stats["tokens"]["input_tokens"])
    assert card_value(page, "output tokens") == display.tokens(stats["tokens"]["output_tokens"])
    assert card_value(page, "total tokens") == display.tokens(stats["tokens"]["total_tokens"])
    assert card_value(page, "cost") == "no price"  # the factory's model is in no price table


def test_every_call_with_its_delta_response_and_stitched_tool_result(run: Path, tmp_path: Path) -> None:
    page, _ = write_report(str(run), "-o", str(tmp_path / "r.html"), "--no-scan")
    records = [json.loads(line) for line in (run / "captures.jsonl").read_text().splitlines()]
    for record in records:
        assert f'id="call-{record["request_id"]}"' in page
    assert page.count('<article class="call') == len(records)
    # Each call carries inspect's delta label (one rule: the conversation chains of core/chains.py).
    listed = CliRunner().invoke(inspect_command, [str(run), "--json"], catch_exceptions=False).output
    labels = {row["request_id"]: row["delta"] for row in map(json.loads, listed.splitlines())}
    assert sorted(labels.values()) == sorted(["init 1", "+2", "+2", "-4 +1", "init 1", "+0"])
    for request_id, label in labels.items():
        article = page[page.index(f'id="call-{request_id}"') :]
        assert article.index(f">{label}</span>") < article.index("</article>")
    assert "the last 4 of the previous call&#x27;s messages were replaced by 1" in page
    # The tool result in call 2 names the tool call it answers and links to the call that made it.
    assert re.search(r"result of <b>read_file</b> <code>call_1</code>, called by <a href=\"#call-", page)
    assert "Straße" in page and "日本" in page
    assert page.count('<details class="task"') == 2  # task-1 and task-2, closed until opened
    assert "upstream_reset: peer closed" in page
    assert "redacted headers: authorization" in page


def test_big_bodies_are_cut_with_their_size(tmp_path: Path) -> None:
    big = "x" * 50_000
    write_run(tmp_path / "runs", "big", [make_record(seq=1, messages=[{"role": "user", "content": big}])])
    page, _ = write_report(str(tmp_path / "runs" / "big"), "-o", str(tmp_path / "r.html"), "--no-scan")
    assert big not in page
    assert "… cut: 46,000 more characters (48.8 KB in all" in page


def test_reasoning_is_collapsed(tmp_path: Path) -> None:
    record = make_record(seq=1)
    record["response"]["body"]["choices"][0]["message"]["reasoning_content"] = "thinking hard about it"
    write_run(tmp_path / "runs", "r", [record])
    page, _ = write_report(str(tmp_path / "runs" / "r"), "-o", str(tmp_path / "r.html"), "--no-scan")
    assert '<details class="reasoning"><summary>reasoning (22 characters)</summary><pre>thinking hard' in page


@needs_kingfisher
def test_secrets_the_scan_finds_are_masked(tmp_path: Path) -> None:
    secrets = canary_secrets()
    records = [
        make_record(seq=1, messages=[{"role": "user", "content": f"GITHUB_TOKEN={secrets['github']} ok?"}]),
        make_record(seq=2, stream=True, reply=f"found SLACK_BOT_TOKEN={secrets['slack']} in .env"),
    ]
    write_run(tmp_path / "runs", "leaky", records)
    page, stderr = write_report(str(tmp_path / "runs" / "leaky"), "-o", str(tmp_path / "r.html"))
    assert secrets["github"] not in page and secrets["slack"] not in page
    assert "[REDACTED:" in page
    assert "secret(s) masked" in stderr and secrets["github"] not in stderr
    assert CANARY_KEY not in page


@needs_kingfisher
def test_findings_of_the_runs_scan_show_on_their_call(tmp_path: Path) -> None:
    from exporter.scan.command import scan_command

    secret = canary_secrets()["github"]
    records = [
        make_record(seq=1),
        make_record(seq=2, messages=[{"role": "user", "content": f"TOKEN={secret}"}]),
    ]
    run_dir = write_run(tmp_path / "runs", "leaky", records)
    CliRunner().invoke(scan_command, [str(run_dir), "--no-verify"])  # leaves the run's scan cache
    page, _ = write_report(str(run_dir), "-o", str(tmp_path / "r.html"))
    second = records[1]["request_id"]
    article = page[page.index(f'id="call-{second}"') - 40 :]
    assert (
        article.startswith('<article class="call finding"')
        or 'class="call finding" id="call-' + second in page
    )
    assert "at captures.jsonl:2 (this call)" in page
    assert secret not in page


def test_a_missing_scanner_writes_nothing(run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    result = CliRunner().invoke(
        report_command, [str(run), "-o", str(tmp_path / "r.html"), "--scanner", "trufflehog"]
    )
    assert result.exit_code == 2
    assert "trufflehog is not installed" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "r.html").exists()


def test_parquet_and_hub_sources_show_the_same_calls(run: Path, tmp_path: Path) -> None:
    [path] = export_parquet(run, tmp_path)
    from_parquet, _ = write_report(str(path), "-o", str(tmp_path / "p.html"), "--no-scan")
    assert "redacted headers: (not kept in parquet)" in from_parquet
    with FakeHub() as hub:
        hub.create_repo("tester/caps-captures")
        hub.put_file("tester/caps-captures", f"data/{path.name}", path.read_bytes())
        env = {"HF_ENDPOINT": hub.url, "HF_TOKEN": hub.token, "HF_HUB_CACHE": str(tmp_path / "cache")}
        from_hub, _ = write_report(
            "hf://datasets/tester/caps-captures", "-o", str(tmp_path / "h.html"), "--no-scan", env=env
        )
    calls = re.compile(r'<article class="[^"]*" id="call-([0-9a-f]+)"')
    assert calls.findall(from_parquet) == calls.findall(from_hub)
    assert len(calls.findall(from_hub)) == 6


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["abcdef12"], "a request id names one call"),
        (["{tmp}/nope.parquet"], "no such parquet file"),
        (["{run}", "-o", "{tmp}/missing/r.html", "--no-scan"], "no such directory"),
    ],
)
def test_bad_input_is_one_line(run: Path, tmp_path: Path, args: list[str], message: str) -> None:
    args = [arg.format(run=run, tmp=tmp_path) for arg in args]
    result = CliRunner().invoke(report_command, ["--runs-dir", str(tmp_path / "none"), *args])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output


def test_an_empty_run_is_one_line(tmp_path: Path) -> None:
    write_run(tmp_path / "runs", "r0", [])
    result = CliRunner().invoke(
        report_command, [str(tmp_path / "runs" / "r0"), "--no-scan", "-o", str(tmp_path / "r.html")]
    )
    assert result.exit_code == 2 and "no recorded calls" in result.output


def test_a_tasks_side_conversations_are_sections_of_their_own(tmp_path: Path) -> None:
    first = [{"role": "user", "content": "fix the build"}]
    loop = [
        *first,
        {"role": "assistant", "content": "hello there"},
        {"role": "user", "content": "and the docs"},
    ]
    title = [
        {"role": "system", "content": "Write a 5-word title."},
        {"role": "user", "content": "fix the build"},
    ]
    records = [
        make_record(seq=1, task_id="t", messages=first),
        make_record(seq=2, task_id="t", messages=loop),
        make_record(seq=3, task_id="t", messages=title, model="org/tiny-titler"),
    ]
    write_run(tmp_path / "runs", "r", records)
    page, _ = write_report(str(tmp_path / "runs" / "r"), "-o", str(tmp_path / "r.html"), "--no-scan")
    sections = re.findall(
        r'<details class="task" id="([^"]+)"><summary>.*?<b>([^<]+)</b> · (\d+) calls', page
    )
    assert sections == [("task-r-t", "t", "2"), ("task-r-t-2", "t · side 2", "1")]
    main = page[page.index('id="task-r-t"') : page.index('id="task-r-t-2"')]
    assert records[2]["request_id"] not in main  # the title call does not interrupt the loop's deltas
    assert ">+2</span>" in main
