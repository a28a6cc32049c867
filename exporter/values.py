"""Reading untyped JSON (request bodies, usage objects, agents' own traces) without ever raising.

Each function returns a value of the wanted type or a neutral one: hostile or corrupt files must
not abort a table.
"""

from __future__ import annotations

import math
from typing import Any

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


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
    return value if isinstance(value, str) and value else None


def as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []
