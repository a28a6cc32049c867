"""The few facts about a call that every total is made of, read cheaply from any source.

A run's `captures.jsonl` is decoded into small typed structs (msgspec skips the bodies without
building them); a parquet file is read column by column, only the small columns (from a Hub
dataset, those are ranged reads: the request and response columns never travel). Files written
before the token columns existed (captures-dataset/1) are normalised from their `usage` column.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, BinaryIO

import msgspec
import pyarrow.parquet as pq

from exporter.errors import UserError
from exporter.runs import LinePolicy, RunDir, Warn, iter_lines, warn_on_stderr
from exporter.usage import TOKEN_KEYS, TokenUsage, normalise_usage

FACT_COLUMNS = (
    "request_id",
    "run_id",
    "agent",
    "task_id",
    "seq",
    "model",
    "served_model",
    "api",
    "captured_at",
    "ttfb_ms",
    "duration_ms",
    "status_code",
    "error",
    "usage",
)


def call_failed(*, error: bool, status_code: int | None) -> bool:
    """A call failed when the proxy recorded an error, no response arrived, or the status is >= 400."""
    return error or status_code is None or status_code >= 400


@dataclass(slots=True)
class CallFacts:
    request_id: str
    run_id: str
    agent: str
    task_id: str | None
    seq: int | None
    model: str  # the request's model, else the served one (the captures `model` column)
    served_model: str | None
    api: str | None
    captured_at: float | None  # epoch seconds
    ttfb_ms: float | None
    duration_ms: float | None
    failed: bool
    usage: TokenUsage


# ---------------------------------------------------------------- run directories


class _ModelProbe(msgspec.Struct):
    model: object = None


class _Request(msgspec.Struct):
    # A body is any JSON value; only an object can name a model.
    body: _ModelProbe | list[Any] | str | int | float | bool | None = None


class _Response(msgspec.Struct):
    status_code: int | None = None


class _FactsRecord(msgspec.Struct, kw_only=True):
    request_id: str = ""
    run_id: str | None = None
    agent: str | None = None
    task_id: str | None = None
    seq: int | None = None
    api: str | None = None
    served_model: str | None = None
    captured_at: float | None = None
    ttfb_ms: float | None = None
    duration_ms: float | None = None
    request: _Request | None = None
    response: _Response | None = None
    usage: msgspec.Raw = msgspec.Raw()
    error: msgspec.Raw = msgspec.Raw()


def _present(raw: msgspec.Raw) -> bool:
    return len(raw) > 0 and bytes(raw) not in (b"null", b"{}")


def run_facts(run: RunDir, *, warn: Warn = warn_on_stderr) -> Iterator[CallFacts]:
    """The facts of every call of a run, in file order; malformed lines skipped by the one line policy."""
    policy = LinePolicy(run.captures_path, warn=warn)
    for line in iter_lines(run.captures_path):
        try:
            record = msgspec.json.decode(line.content, type=_FactsRecord)
        except (msgspec.DecodeError, msgspec.ValidationError) as error:
            policy.malformed(line, str(error))
            continue
        body = record.request.body if record.request else None
        model = body.model if isinstance(body, _ModelProbe) else None
        usage = msgspec.json.decode(record.usage) if _present(record.usage) else None
        yield CallFacts(
            request_id=record.request_id,
            run_id=record.run_id or run.run_id,
            agent=record.agent or run.agent,
            task_id=record.task_id,
            seq=record.seq,
            model=model if isinstance(model, str) and model else (record.served_model or ""),
            served_model=record.served_model,
            api=record.api,
            captured_at=record.captured_at,
            ttfb_ms=record.ttfb_ms,
            duration_ms=record.duration_ms,
            failed=call_failed(
                error=_present(record.error),
                status_code=record.response.status_code if record.response else None,
            ),
            usage=normalise_usage(usage, record.api),
        )


# ---------------------------------------------------------------- parquet


def parquet_facts(source: str | BinaryIO) -> Iterator[CallFacts]:
    """The facts of every row of a captures parquet file (a path, or an open file: a Hub file)."""
    parquet = pq.ParquetFile(source)
    names = set(parquet.schema_arrow.names)
    if not {"request_id", "captured_at", "model"} <= names:
        raise UserError("not a captures parquet file (no request_id, captured_at and model columns)")
    has_tokens = all(name in names for name in TOKEN_KEYS)
    columns = [name for name in FACT_COLUMNS if name in names]
    columns += list(TOKEN_KEYS) if has_tokens else []
    for batch in parquet.iter_batches(columns=columns):
        for row in batch.to_pylist():
            yield _row_facts(row, has_tokens)


def _row_facts(row: dict[str, Any], has_tokens: bool) -> CallFacts:
    if has_tokens:
        usage = TokenUsage(**{key: row[key] for key in TOKEN_KEYS})
    else:  # a captures-dataset/1 file: the same normalisation, from the JSON it kept
        usage = normalise_usage(_json(row.get("usage")), row.get("api"))
    captured = row.get("captured_at")
    return CallFacts(
        request_id=row.get("request_id") or "",
        run_id=row.get("run_id") or "",
        agent=row.get("agent") or "",
        task_id=row.get("task_id"),
        seq=row.get("seq"),
        model=row.get("model") or "",
        served_model=row.get("served_model"),
        api=row.get("api"),
        captured_at=captured.timestamp() if isinstance(captured, datetime) else None,
        ttfb_ms=row.get("ttfb_ms"),
        duration_ms=row.get("duration_ms"),
        failed=call_failed(error=bool(row.get("error")), status_code=row.get("status_code")),
        usage=usage,
    )


def _json(text: Any) -> Any:
    if not isinstance(text, str):
        return None
    try:
        return msgspec.json.decode(text)
    except msgspec.DecodeError:
        return None
