"""Per-run scan cache: a result is reused only for the same content, scanner, version and options.

The cache holds findings as `Finding`s (hash and masked preview), never raw secrets. It lives in
the run directory, outside the scanned paths; a read-only run directory just means no cache.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from exporter.scan.findings import Finding
from exporter.scan.inputs import CACHE_FILE_NAME

CACHE_SCHEMA = "agentcap.scan-cache/1"


@dataclass(frozen=True)
class CacheKey:
    content_sha256: str
    scanner: str
    scanner_version: str
    options: tuple[tuple[str, str], ...]

    @property
    def digest(self) -> str:
        material = json.dumps(
            [self.content_sha256, self.scanner, self.scanner_version, list(self.options)],
            separators=(",", ":"),
        )
        return hashlib.sha256(material.encode()).hexdigest()


def load_cached(run_path: Path, key: CacheKey) -> list[Finding] | None:
    try:
        data = json.loads((run_path / CACHE_FILE_NAME).read_text(encoding="utf-8"))
        if data.get("schema") != CACHE_SCHEMA or data.get("key") != key.digest:
            return None
        return [Finding.from_dict(item) for item in data["findings"]]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        # Missing, stale or damaged: scan again rather than trust it.
        return None


def store_cached(run_path: Path, key: CacheKey, findings: list[Finding]) -> bool:
    """Write atomically; False when the run directory is not writable (the scan result still counts)."""
    data: dict[str, Any] = {
        "schema": CACHE_SCHEMA,
        "key": key.digest,
        "scanned_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "scanner": key.scanner,
        "scanner_version": key.scanner_version,
        "options": dict(key.options),
        "content_sha256": key.content_sha256,
        "findings": [finding.to_dict() for finding in findings],
    }
    try:
        descriptor, temporary = tempfile.mkstemp(dir=run_path, prefix=CACHE_FILE_NAME, suffix=".tmp")
    except OSError:
        return False
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=1)
        os.replace(temporary, run_path / CACHE_FILE_NAME)
    except OSError:
        Path(temporary).unlink(missing_ok=True)
        return False
    return True
