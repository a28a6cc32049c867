"""Reading a scanner's own words: its version, and a short excerpt of a failure that never quotes a secret."""

from __future__ import annotations

import re

from exporter.scan.findings import masked_preview
from exporter.scan.types import ScanFailed

_VERSION_PATTERN = re.compile(r"\b(\d+\.\d+\.\d+)\b")
_TOKEN_LIKE = re.compile(r"[A-Za-z0-9_+=-]{20,}")


def version_from(output: str, scanner_name: str) -> str:
    match = _VERSION_PATTERN.search(output)
    if match is None:
        raise ScanFailed(
            f"cannot read the {scanner_name} version from `{scanner_name} --version`: {last_line(output)}"
        )
    return match.group(1)


def failure_excerpt(text: str) -> str:
    """The scanner's own explanation, short: its first error line, else its last line."""
    for line in text.splitlines():
        if "error" in line.lower():
            return _clip(line.strip())
    return last_line(text)


def last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return _clip(lines[-1]) if lines else "(no output)"


def _clip(line: str, limit: int = 200) -> str:
    # A scanner's own words can quote what it found (trufflehog's stdout is findings with `Raw`):
    # every long token-like run is masked before it is shown.
    line = _TOKEN_LIKE.sub(lambda match: masked_preview(match.group()), line)
    return line if len(line) <= limit else line[: limit - 1] + "…"
