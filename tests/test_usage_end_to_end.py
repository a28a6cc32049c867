"""Usage from real SDK clients, through the real proxy, into every place that shows it.

The openai, anthropic and google-genai SDKs call the fake model server (asked for detailed usage: cached,
cache-write and reasoning tokens in each API's own shape) through mitmproxy with the agentcap
addon. The export's token columns must hold each provider's numbers, normalised; and one run's
totals must be the sum over its calls in `ls -l`, `stats`, the dataset card and the HTML report.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import openai
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from factories import CANARY_KEY
from fake_model_server import FakeModelServer
from google import genai
from google.genai import types
from proxy_harness import ProxyHarness

from exporter.core.usage import TOKEN_KEYS
from exporter.export.command import export_command
from exporter.ls.command import ls_command
from exporter.report.command import report_command
from exporter.shared import totals_display as display
from exporter.stats.command import stats_command

DETAILED = {"x-fake-usage": "detailed"}
PRICES = """
[models."gpt-test"]
input = 1.0
cached_input = 0.5
cache_write = 1.25
output = 4.0

[models."gemini-test"]
input = 1.25
cached_input = 0.31
output = 10.0

[models."claude-test"]
input = 3.0
cached_input = 0.3
cache_write = 3.75
output = 15.0
"""
# (input, cache read, cache write, output, reasoning, total) as each API's detailed usage normalises
CHAT = (76, 1024, 100, 300, 256, 1500)
RESPONSES = (260, 512, 128, 120, 64, 1020)
MESSAGES = (50, 1000, 200, 300, 120, 1550)
GEMINI = (410, 600, None, 140, 100, 1150)  # usageMetadata: thoughts apart from candidates
PLAIN_MESSAGES = (13, None, None, 6, None, 19)  # the fake server's usage without details


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, list[dict[str, Any]]]]:
    root = tmp_path_factory.mktemp("usage")
    with FakeModelServer() as upstream:
        proxy = ProxyHarness(upstream.url, root / "runs").start()
        try:
            drive_every_api(proxy)
        finally:
            proxy.stop()
        yield root, proxy.records()


def drive_every_api(proxy: ProxyHarness) -> None:
    openai_client = openai.OpenAI(
        base_url=proxy.url + "/v1", api_key=CANARY_KEY, max_retries=0, default_headers=DETAILED
    )
    messages = [{"role": "user", "content": "hi"}]
    openai_client.chat.completions.create(model="gpt-test", messages=messages)
    chunks = list(
        openai_client.chat.completions.create(
            model="gpt-test", messages=messages, stream=True, stream_options={"include_usage": True}
        )
    )
    assert next(chunk.usage for chunk in chunks if chunk.usage).prompt_tokens_details.cached_tokens == 1024
    openai_client.responses.create(model="gpt-test", input="hi")
    events = list(openai_client.responses.create(model="gpt-test", input="hi", stream=True))
    assert events[-1].response.usage.input_tokens_details.cached_tokens == 512
    openai_client.completions.create(model="gpt-test", prompt="say hi")
    claude = anthropic.Anthropic(
        base_url=proxy.url, api_key=CANARY_KEY, max_retries=0, default_headers=DETAILED
    )
    message = claude.messages.create(model="claude-test", max_tokens=64, messages=messages)
    assert message.usage.cache_read_input_tokens == 1000
    with claude.messages.stream(model="claude-test", max_tokens=64, messages=messages) as stream:
        final = stream.get_final_message()
    assert final.usage.output_tokens == 300 and final.usage.cache_creation_input_tokens == 200
    # Without the header: Anthropic's plain usage (no cache fields): those counters stay null.
    plain = anthropic.Anthropic(base_url=proxy.url, api_key=CANARY_KEY, max_retries=0)
    plain.messages.create(model="claude-test", max_tokens=64, messages=messages)
    gemini = genai.Client(
        api_key=CANARY_KEY, http_options=types.HttpOptions(base_url=proxy.url, headers=DETAILED)
    )
    answer = gemini.models.generate_content(model="gemini-test", contents="hi")
    assert answer.usage_metadata is not None and answer.usage_metadata.cached_content_token_count == 600
    chunks = list(gemini.models.generate_content_stream(model="gemini-test", contents="hi"))
    assert chunks[-1].usage_metadata is not None and chunks[-1].usage_metadata.thoughts_token_count == 100


def exported(root: Path) -> dict[str, dict[str, Any]]:
    output = root / "export"
    if not output.exists():
        result = CliRunner().invoke(export_command, [str(root / "runs"), "--no-scan", "-o", str(output)])
        assert result.exit_code == 0, result.output
    rows = {}
    for path in (output / "local" / "agentcap-captures" / "data").glob("*.parquet"):
        rows |= {row["request_id"]: row for row in pq.read_table(path).to_pylist()}
    return rows


def test_each_api_lands_in_the_token_columns_with_the_providers_numbers(recorded) -> None:
    root, records = recorded
    rows = exported(root)
    seen = []
    for record in records:
        row = rows[record["request_id"]]
        tokens = tuple(row[key] for key in TOKEN_KEYS)
        streamed = bool(record["response"].get("stream"))
        seen.append((record["api"], streamed, tokens))
        if record["usage"] is not None:
            assert json.loads(row["usage"]) == record["usage"]  # the provider's object, kept as sent
        else:  # Gemini: the record keeps no usage; the column holds the answer's usageMetadata
            assert json.loads(row["usage"])["cachedContentTokenCount"] == 600
    assert seen == [
        ("chat.completions", False, CHAT),
        ("chat.completions", True, CHAT),
        ("responses", False, RESPONSES),
        ("responses", True, RESPONSES),
        ("completions", False, CHAT),
        ("messages", False, MESSAGES),
        ("messages", True, MESSAGES),  # message_start's input side + message_delta's output side
        ("messages", False, PLAIN_MESSAGES),
        ("gemini.generate_content", False, GEMINI),
        ("gemini.generate_content", True, GEMINI),  # the stream's last chunk
    ]
    for _, _, (input_tokens, read, write, output, _, total) in seen:
        assert input_tokens + (read or 0) + (write or 0) + output == total


def test_a_runs_totals_are_the_sum_of_its_calls_everywhere(recorded, tmp_path: Path) -> None:
    root, _ = recorded
    rows = exported(root)
    summed = {key: sum(row[key] or 0 for row in rows.values()) for key in TOKEN_KEYS}
    prices = tmp_path / "prices.toml"
    prices.write_text(PRICES)

    stats = json.loads(
        CliRunner().invoke(stats_command, [str(root / "runs"), "--json", "--prices", str(prices)]).output
    )["total"]
    assert stats["tokens"] == summed and stats["calls"] == len(rows) == 10
    assert stats["unpriced_calls"] == 0 and stats["cost_usd"] > 0
    from_parquet = {}
    for path in (root / "export" / "local" / "agentcap-captures" / "data").glob("*.parquet"):
        part = json.loads(
            CliRunner().invoke(stats_command, [str(path), "--json", "--prices", str(prices)]).output
        )
        for key, value in part["total"]["tokens"].items():
            from_parquet[key] = from_parquet.get(key, 0) + (value or 0)
    assert from_parquet == summed

    [listed] = json.loads(
        CliRunner().invoke(ls_command, [str(root / "runs"), "-l", "--json", "--prices", str(prices)]).output
    )
    assert listed["totals"] == stats

    card = (root / "export" / "local" / "agentcap-captures" / "README.md").read_text()
    assert f"| calls (rows) | {len(rows)} |" in card
    assert (
        f"| input tokens | {summed['input_tokens']:,} (cache read {summed['cache_read_tokens']:,}, "
        f"cache write {summed['cache_write_tokens']:,}) |"
    ) in card
    assert (
        f"| output tokens | {summed['output_tokens']:,} (reasoning {summed['reasoning_tokens']:,}) |" in card
    )
    assert f"| total tokens | {summed['total_tokens']:,} |" in card

    report = tmp_path / "report.html"
    result = CliRunner().invoke(
        report_command, [str(root / "runs"), "-o", str(report), "--no-scan", "--prices", str(prices)]
    )
    assert result.exit_code == 0, result.output
    page = report.read_text()

    def card_value(label: str) -> str:
        match = re.search(rf'<div class="card[^"]*"><span>{label}</span><b>([^<]*)</b>', page)
        assert match, label
        return match.group(1)

    assert card_value("total tokens") == display.tokens(summed["total_tokens"])
    assert card_value("input tokens") == display.tokens(summed["input_tokens"])
    assert card_value("output tokens") == display.tokens(summed["output_tokens"])
    assert card_value("cost") == display.usd(stats["cost_usd"])
