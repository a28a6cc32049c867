"""The Arrow schema of a rollout row (see record.py for the row itself): fixed, every key always present."""

from __future__ import annotations

import pyarrow as pa

_TIMESTAMP = pa.timestamp("ms", tz="UTC")
_TOOL_CALL = pa.struct(
    [
        ("id", pa.string()),
        ("type", pa.string()),
        ("function", pa.struct([("name", pa.string()), ("arguments", pa.string())])),
    ]
)
MESSAGE_TYPE = pa.struct(
    [
        ("role", pa.string()),
        ("content", pa.string()),
        ("reasoning_content", pa.string()),
        ("tool_calls", pa.list_(_TOOL_CALL)),
        ("tool_call_id", pa.string()),
        ("name", pa.string()),
        ("timestamp", _TIMESTAMP),
        ("model", pa.string()),
        ("is_meta", pa.bool_()),
        ("is_error", pa.bool_()),
    ]
)
USAGE_TYPE = pa.struct(
    [
        ("input_tokens", pa.int64()),
        ("output_tokens", pa.int64()),
        ("cache_read_tokens", pa.int64()),
        ("cache_write_tokens", pa.int64()),
        ("reasoning_tokens", pa.int64()),
        ("total_tokens", pa.int64()),
        ("cost_usd", pa.float64()),
    ]
)
ROLLOUT_SCHEMA = pa.schema(
    [
        ("trace_id", pa.string()),
        ("agent", pa.string()),
        ("agent_version", pa.string()),
        ("source_kind", pa.string()),
        ("source_path", pa.string()),
        ("session_id", pa.string()),
        ("root_session_id", pa.string()),
        ("parent_session_id", pa.string()),
        ("agent_id", pa.string()),
        ("is_sidechain", pa.bool_()),
        ("title", pa.string()),
        ("cwd", pa.string()),
        ("project_path", pa.string()),
        ("git_branch", pa.string()),
        ("model", pa.string()),
        ("models", pa.list_(pa.string())),
        ("provider", pa.string()),
        ("started_at", _TIMESTAMP),
        ("ended_at", _TIMESTAMP),
        ("messages", pa.list_(MESSAGE_TYPE)),
        ("message_count", pa.int32()),
        ("turn_count", pa.int32()),
        ("tool_call_count", pa.int32()),
        ("tool_error_count", pa.int32()),
        ("first_user_message", pa.string()),
        ("final_assistant_message", pa.string()),
        ("usage", USAGE_TYPE),
        ("branch_policy", pa.string()),
        ("is_partial", pa.bool_()),
        ("parse_warnings", pa.list_(pa.string())),
        ("source_meta", pa.string()),
    ]
)
