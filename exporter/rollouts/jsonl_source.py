"""Streaming a JSONL session file line by line, tolerating garbage lines and a cut final line."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

_BLOCK_BYTES = 1 << 20


@dataclass(slots=True)
class LineScan:
    """What reading a file noticed: skipped lines (as warnings) and a cut final line."""

    warnings: list[str] = field(default_factory=list)
    is_partial: bool = False
    good_lines: int = 0


def scan_jsonl[T](path: Path, decoder: msgspec.json.Decoder[T], scan: LineScan) -> Iterator[tuple[int, T]]:
    """Yield (line number, decoded line); bad lines become warnings instead of errors.

    A last line without a newline that does not decode is what a killed writer leaves: it marks the
    scan partial rather than broken.
    """
    decode = decoder.decode
    first = 1
    with path.open("rb") as handle:
        # Whole lines in blocks of about _BLOCK_BYTES: one call per block instead of one per line.
        while block := handle.readlines(_BLOCK_BYTES):
            for number, line in enumerate(block, first):
                try:
                    value = decode(line)
                except msgspec.ValidationError as error:
                    scan.warnings.append(f"line {number}: unexpected shape ({error})")
                    continue
                except msgspec.DecodeError:
                    if line.isspace():
                        continue  # blank lines are not damage (checked only here: decoding is the fast path)
                    if not line.endswith(b"\n"):
                        scan.is_partial = True
                        scan.warnings.append(f"line {number}: cut short (partial final line)")
                    else:
                        scan.warnings.append(f"line {number}: not valid JSON")
                    continue
                scan.good_lines += 1
                yield number, value
            first += len(block)


def read_head_objects(path: Path, limit: int = 4, max_bytes: int = 1 << 20) -> list[dict[str, Any]]:
    """The first `limit` JSON objects of a file (for format detection); stops at the first bad line."""
    objects: list[dict[str, Any]] = []
    try:
        with path.open("rb") as handle:
            while len(objects) < limit:
                line = handle.readline(max_bytes)
                if not line:
                    break
                if line.isspace():
                    continue
                try:
                    value = msgspec.json.decode(line)
                except msgspec.DecodeError:
                    break
                if not isinstance(value, dict):
                    break
                objects.append(value)
    except OSError:
        return []
    return objects
