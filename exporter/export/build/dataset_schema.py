"""The captures dataset schema: one fixed Arrow schema shared by every parquet file we write.

Pinning every type (and never letting Arrow infer one) is what lets files from different runs and
agentcap versions load together in `datasets`, DuckDB and polars: an all-null column in one file
would otherwise become type `null` and break the concatenation.
"""

import pyarrow as pa

DATASET_SCHEMA_VERSION = "agentcap.captures-dataset/1"
"""Version of the parquet columns below; bumped when a column is added, removed or retyped."""

CAPTURED_AT_TYPE = pa.timestamp("us", tz="UTC")

# (name, type, nullable, description). Documented columns first, in the order users of the
# reference datasets know, then our extras; all extras are nullable so that a later version
# can leave one empty without changing the schema.
COLUMNS: tuple[tuple[str, pa.DataType, bool, str], ...] = (
    (
        "request_id",
        pa.string(),
        False,
        "32-hex id of the call; also sent to the client as `X-Agentcap-Request-Id`",
    ),
    ("model", pa.string(), False, "`model` of the request body (else the served model, else empty)"),
    ("captured_at", CAPTURED_AT_TYPE, False, "when the request reached the proxy (UTC, microseconds)"),
    ("task_id", pa.string(), True, "task tag (`X-Agentcap-Task` header or context endpoint)"),
    ("turn", pa.int64(), True, "turn tag (`X-Agentcap-Turn` header or context endpoint)"),
    ("request", pa.string(), False, "JSON string of the request body"),
    (
        "response",
        pa.string(),
        False,
        'JSON string of the response body; `{"stream": true, "raw": "<SSE text>"}` for a streamed call; '
        "an object with an `error` key for a failed call",
    ),
    ("served_by", pa.string(), True, "upstream `X-Served-By` header"),
    ("served_build_info", pa.string(), True, "upstream `X-Build-Info` header"),
    ("served_model", pa.string(), True, "model name the upstream echoed back"),
    ("provider", pa.string(), False, "provider derived from the upstream host (constant per file)"),
    ("upstream_url", pa.string(), False, "`scheme://host[:port]` of the upstream (constant per file)"),
    ("run_id", pa.string(), True, "run the call belongs to; joins with the traces datasets"),
    ("agent", pa.string(), True, "agent that made the call (`unknown` if not set)"),
    ("seq", pa.int64(), True, "per-run arrival order of the call (rows are sorted by it)"),
    ("api", pa.string(), True, "`chat.completions`, `responses`, `messages`, `completions` or `custom`"),
    ("stream", pa.bool_(), True, "true when the response was streamed (SSE)"),
    ("status_code", pa.int32(), True, "HTTP status of the response; null when none arrived"),
    ("ttfb_ms", pa.float64(), True, "request start to response headers, milliseconds"),
    ("duration_ms", pa.float64(), True, "request start to the end of the call, milliseconds"),
    ("usage", pa.string(), True, "JSON string of the provider's usage object"),
    ("error", pa.string(), True, 'JSON string `{"kind", "message"}` when the call failed, else null'),
)

CAPTURES_SCHEMA = pa.schema([pa.field(name, kind, nullable=nullable) for name, kind, nullable, _ in COLUMNS])
COLUMN_NAMES: tuple[str, ...] = tuple(CAPTURES_SCHEMA.names)
COLUMN_DESCRIPTIONS: dict[str, str] = {name: description for name, _, _, description in COLUMNS}


def type_name(name: str) -> str:
    """Readable Arrow type of a column for docs and cards, e.g. `string`, `timestamp[us, tz=UTC]`."""
    return str(CAPTURES_SCHEMA.field(name).type)
