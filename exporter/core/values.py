"""Reading untyped JSON (request bodies, agents' own traces): coercion and message content → text.

One rule each, shared by the export, inspect, rollouts and the wire decoder:
- `as_int` / `as_float` / `as_str` / `as_dict` / `as_list`: a value of the wanted type or a neutral
  one (never an exception: hostile or corrupt files must not abort a table);
- `content_text`: a message's content as the text a reader sees.
"""

from __future__ import annotations

import json
import math
from typing import Any

import msgspec

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
IMAGE_PART_TYPES = frozenset({"image_url", "image", "input_image"})
PROMPT_PREVIEW_CHARS = 200


def as_int(value: Any) -> int | None:
    """An int64 from a counter field, or None for anything else (not a number, NaN, inf, out of range).

    Every int column is int64: a bigger value in a hostile or corrupt file must not abort the table.
    """
    if type(value) is not int:  # the usual case is an int: this runs for every counter of every call
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            return None
        value = int(value)
    return value if INT64_MIN <= value <= INT64_MAX else None


def as_float(value: Any) -> float | None:
    if type(value) is float:
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def as_str(value: Any) -> str | None:
    """A non-empty string, else None."""
    return value if isinstance(value, str) and value else None


def as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def to_json(value: Any) -> str:
    """Compact JSON text keeping non-ASCII characters; falls back to `json` for odd keys."""
    try:
        return msgspec.json.encode(value).decode()
    except (TypeError, msgspec.EncodeError):
        return json.dumps(value, ensure_ascii=False, default=str)


def arguments_json(value: Any) -> str:
    """Tool arguments as a JSON string: strings are kept verbatim (already what the model emitted)."""
    if isinstance(value, str):
        return value
    if value is None:
        return "{}"
    return to_json(value)


def as_text(value: Any) -> str:
    """A string as is, anything else as ""."""
    return value if isinstance(value, str) else ""


def join_text(parts: list[str]) -> str:
    """Text blocks joined the way a reader sees them: separated by a blank line."""
    return "\n\n".join(part for part in parts if part)


def content_text(content: Any, *, brief: bool = False) -> str:
    """Message content as text, whatever the API: a string as is; a list of parts as their texts,
    an image as `[image]`, any other part as its JSON (nothing dropped), joined by `join_text`.

    `brief` (conversations as people read them: rollouts, sessions): a typed non-text part is a
    short marker of its type (`[input_audio]`, `[document]`) instead of its JSON, often base64."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return to_json(content)
    parts: list[str] = []
    for part in content:
        if isinstance(part, str):
            parts.append(part)
        elif isinstance(part, dict) and isinstance(part.get("text"), str):
            parts.append(part["text"])
        elif isinstance(part, dict) and part.get("type") in IMAGE_PART_TYPES:
            parts.append("[image]")
        elif brief and isinstance(part, dict) and isinstance(part.get("type"), str):
            parts.append(f"[{part['type']}]")
        elif part:
            parts.append(to_json(part))
    return join_text(parts)


def clip_words(text: str, limit: int) -> str:
    """At most `limit` characters, never ending in part of a word.

    A cut word could be part of a secret: such a piece matches no exact replacement and no
    scanner pattern, yet gives away most of the key. A first word longer than `limit` gives "".
    """
    if len(text) <= limit:
        return text
    clipped = text[: limit + 1]
    return clipped[: clipped.rfind(" ")].rstrip() if " " in clipped else ""


def first_user_prompt(body: bytes | msgspec.Raw) -> str:
    """The first user message of a request body, on one line, at most 200 characters, whole words (a task's label)."""
    try:
        request = msgspec.json.decode(body) if len(body) else None
    except msgspec.DecodeError:
        return ""
    if not isinstance(request, dict):
        return ""
    messages = request.get("messages") or request.get("input") or []
    if isinstance(messages, str):
        return clip_words(" ".join(messages.split()), PROMPT_PREVIEW_CHARS)
    for message in as_list(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            return clip_words(" ".join(content_text(message.get("content")).split()), PROMPT_PREVIEW_CHARS)
    return ""
