"""Property tests: no input crashes a parser. Each either yields rows that fit the fixed Arrow schema or
skips the unit whole (BrokenUnit) — never a traceback, never half a record."""

from __future__ import annotations

import json
import random
import sqlite3
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rollout_fixtures import (
    build_goose_db,
    build_hermes_db,
    build_opencode_db,
    claude_basic_lines,
    codex_lines,
    fixed_table,
    pi_lines,
)

from exporter.core.values import as_int
from exporter.rollouts.base import BrokenUnit, Unit
from exporter.rollouts.registry import FORMATS, detect, get_format
from exporter.rollouts.sqlite_source import SnapshotStore

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.floats(allow_nan=False)
    | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


def mutate(value: Any, rng: random.Random, replacements: list[Any]) -> Any:
    """Replace some nested values of a realistic line by arbitrary JSON, keeping the rest intact."""
    if isinstance(value, dict):
        return {
            key: rng.choice(replacements) if rng.random() < 0.15 else mutate(item, rng, replacements)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [mutate(item, rng, replacements) for item in value]
    return value


mutators = st.builds(
    lambda seed, replacements: (random.Random(seed), replacements),
    st.integers(0, 2**32),
    st.lists(json_values, min_size=1, max_size=5),
)


def check_rows(format_name: str, unit: Unit) -> None:
    try:
        rollouts = get_format(format_name).hydrate(unit)
    except BrokenUnit:
        return
    rows = [rollout.to_row() for rollout in rollouts]
    fixed_table(rows)  # every row has exactly the fixed schema's keys, and fits its types


def jsonl_case(format_name: str, base_lines: list[dict], data: st.DataObject) -> None:
    rng, replacements = data.draw(mutators)
    lines = [json.dumps(mutate(line, rng, replacements)) for line in base_lines]
    extra = data.draw(st.lists(st.text(max_size=30) | json_values.map(json.dumps), max_size=3))
    for text in extra:
        lines.insert(data.draw(st.integers(0, len(lines))), text.replace("\n", " "))
    tail = data.draw(st.sampled_from(["\n", "", '{"type":']))
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "rollout-x.jsonl"
        path.write_text("\n".join(lines) + tail, encoding="utf-8")
        check_rows(format_name, Unit(format_name, path, path.name))


@SETTINGS
@given(st.data())
def test_claude_code_never_crashes(data: st.DataObject) -> None:
    jsonl_case("claude_code", claude_basic_lines(), data)


@SETTINGS
@given(st.data())
def test_codex_never_crashes(data: st.DataObject) -> None:
    jsonl_case("codex", codex_lines(), data)


@SETTINGS
@given(st.data())
def test_pi_never_crashes(data: st.DataObject) -> None:
    jsonl_case("pi", pi_lines(), data)


@settings(max_examples=30, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_crash_jsonl_parsers(blob: bytes) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "x.jsonl"
        path.write_bytes(blob)
        for name in ("claude_code", "codex", "pi", "captures"):
            check_rows(name, Unit(name, path, path.name))


DATABASES = {
    "opencode": (
        build_opencode_db,
        "SELECT rowid, data FROM part",
        "UPDATE part SET data = ? WHERE rowid = ?",
    ),
    "hermes": (
        build_hermes_db,
        "SELECT id, tool_calls FROM messages",
        "UPDATE messages SET tool_calls = ? WHERE id = ?",
    ),
    "goose": (
        build_goose_db,
        "SELECT id, content_json FROM messages",
        "UPDATE messages SET content_json = ? WHERE id = ?",
    ),
}


@SETTINGS
@given(st.sampled_from(sorted(DATABASES)), st.data())
def test_mangled_database_json_never_crashes(format_name: str, data: st.DataObject) -> None:
    build, select, update = DATABASES[format_name]
    with tempfile.TemporaryDirectory() as directory:
        path = build(Path(directory) / "agent.db")
        connection = sqlite3.connect(path)
        rng, replacements = data.draw(mutators)
        for row_id, raw in connection.execute(select).fetchall():
            original = json.loads(raw) if raw else None
            mangled = mutate(original, rng, replacements) if rng.random() < 0.7 else rng.choice(replacements)
            text = json.dumps(mangled) if rng.random() < 0.8 else str(rng.choice(replacements))[:10]
            connection.execute(update, (text, row_id))
        connection.commit()
        connection.close()
        fmt = get_format(format_name)
        with SnapshotStore() as snapshots:
            for unit in fmt.plan_units(path.parent, [path], snapshots, lambda message: None):
                check_rows(format_name, unit)


@settings(max_examples=40, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["type", "payload", "id", "instructions", "timestamp", "sessionId", "schema", "cwd"]),
        json_values,
        max_size=6,
    )
)
def test_auto_detection_never_crashes_on_odd_heads(head: dict) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "x.jsonl"
        path.write_text(json.dumps(head) + "\n", encoding="utf-8")
        found = detect(path)  # a format or None: a `type` that is an object once raised TypeError here
        assert found is None or FORMATS[found.name] is found


@pytest.mark.parametrize("value", [9.223372036854776e18, 2**63, 10**40, -(10**40)])
def test_counters_outside_int64_become_null_instead_of_breaking_the_table(value: float) -> None:
    # Found by test_codex_never_crashes on a fresh machine: a token count of 2**63 aborted the table.
    line = {"type": "event_msg", "payload": {"type": "token_count", "info": {"total_token_usage": {}}}}
    line["payload"]["info"]["total_token_usage"] = {"input_tokens": value, "output_tokens": 7}
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "rollout-x.jsonl"
        lines = [*codex_lines(), line]
        path.write_text("\n".join(json.dumps(entry) for entry in lines) + "\n", encoding="utf-8")
        [rollout] = get_format("codex").hydrate(Unit("codex", path, path.name))
    [row] = fixed_table([rollout.to_row()]).to_pylist()
    assert row["usage"]["output_tokens"] == 7 and row["usage"]["input_tokens"] is None


def test_non_finite_counters_from_sqlite_reals_become_null() -> None:
    # JSON has no NaN/inf, but SQLite REAL columns (opencode, goose, Hermes) can hold them.
    assert [as_int(value) for value in (float("inf"), float("-inf"), float("nan"), 2**63 - 1)] == [
        None,
        None,
        None,
        2**63 - 1,
    ]
