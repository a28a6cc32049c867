"""The scanners the gate can run, by name. Adding one: a module with a `ScannerAdapter` and a line here.

Each adapter supplies its command line, how to read its version, and a parser that applies its
exit-code rules (`exporter.scan.types.ScannerAdapter`); `exporter.scan.engine` runs them.
"""

from __future__ import annotations

from exporter.core.errors import UserError
from exporter.scan.scanners import kingfisher, trufflehog
from exporter.scan.types import DEFAULT_SCANNER, ScannerAdapter

SCANNERS: dict[str, ScannerAdapter] = {
    adapter.name: adapter for adapter in (kingfisher.SCANNER, trufflehog.SCANNER)
}

__all__ = ["DEFAULT_SCANNER", "SCANNERS", "get_scanner", "scanner_names"]


def scanner_names() -> list[str]:
    return sorted(SCANNERS)


def get_scanner(name: str) -> ScannerAdapter:
    if name not in SCANNERS:
        raise UserError(f"unknown scanner {name!r}; choose one of: {', '.join(scanner_names())}")
    return SCANNERS[name]
