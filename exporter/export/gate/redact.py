"""`--redact`: replace every finding's exact secret in the staged copies, then prove it with a re-scan.

Only the staging directory is touched: the build copies traces (never links them), and every
rewrite here goes to a new file that replaces the staged one, so even a hard link could not
reach a run. The raw secrets come from the scanner's output in this process (`SecretBook`) and
are never written anywhere; what replaces them is `[REDACTED:<detector>:<sha8>]`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from rich.console import Console

from exporter.core.errors import AbortExport
from exporter.export.bundles import CARD_FILE, BuiltExport
from exporter.scan.engine import locate_binary, scan_groups
from exporter.scan.scanners import get_scanner
from exporter.scan.types import Finding, RedactionSummary, ScanFailed, ScanResult
from exporter.shared.parquet_io import ParquetFileWriter

SQLITE_MAGIC = b"SQLite format 3\x00"
_DETECTOR_SLUG = re.compile(r"[^A-Za-z0-9._-]+")

# (text as it may appear in a file, what replaces it), longest first so a secret that contains
# another is replaced whole.
Replacements = list[tuple[str, str]]


def redaction_token(finding: Finding) -> str:
    detector = _DETECTOR_SLUG.sub("-", finding.detector).strip("-") or "secret"
    return f"[REDACTED:{detector}:{finding.sha8}]"


def redact_export(built: BuiltExport, result: ScanResult, *, console: Console) -> RedactionSummary:
    """Rewrite the staged bundles without the secrets in `result`, then re-scan them; raise unless clean."""
    replacements = _replacements(result)
    changed: list[str] = []
    for index, bundle in enumerate(built.bundles):
        for file in bundle.files:
            if _redact_file(bundle.local_path(file), replacements, label=f"{bundle.name}/{file.path}"):
                changed.append(f"{bundle.name}/{file.path}")
        card = _replace_text(bundle.card, replacements)
        if card != bundle.card:
            (bundle.folder / CARD_FILE).write_text(card, encoding="utf-8")
            built.bundles[index] = replace(bundle, card=card)
            changed.append(f"{bundle.name}/{CARD_FILE}")
    secrets = len({finding.sha256 for _, finding in result.findings()})
    console.print(f"redacted {secrets} secret(s) in {len(changed)} staged file(s); re-scanning the output")
    _rescan_output(built, result.options.scanner)
    return RedactionSummary(
        secrets=secrets, files_changed=tuple(changed), rescan_scanner=result.options.scanner
    )


def _replacements(result: ScanResult) -> Replacements:
    pairs: dict[str, str] = {}
    for _, finding in result.findings():
        secret = result.secrets.secret(finding.sha256)
        if secret is None:
            raise ScanFailed(
                f"cannot redact {finding.location}: the scanner did not hand over the matched text"
            )
        for form in _written_forms(secret):
            pairs.setdefault(form, redaction_token(finding))
    return sorted(pairs.items(), key=lambda pair: len(pair[0]), reverse=True)


def _written_forms(secret: str) -> set[str]:
    """The secret as scanned, as JSON writes it, and unescaped when the scanner saw JSON escapes."""
    forms = {secret, json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1]}
    try:
        decoded = json.loads(f'"{secret}"')
    except ValueError:
        decoded = None
    if isinstance(decoded, str):
        forms.add(decoded)
    return {form for form in forms if form}


def _replace_text(text: str, replacements: Replacements) -> str:
    for old, new in replacements:
        text = text.replace(old, new)
    return text


def _redact_file(path: Path, replacements: Replacements, *, label: str) -> bool:
    with path.open("rb") as handle:
        head = handle.read(len(SQLITE_MAGIC))
    if path.suffix == ".parquet":
        return _swap_in(path, lambda temporary: _redact_parquet(path, temporary, replacements))
    if head == SQLITE_MAGIC:
        return _swap_in(path, lambda temporary: _redact_sqlite(path, temporary, replacements, label=label))
    return _swap_in(path, lambda temporary: _redact_bytes(path, temporary, replacements))


def _swap_in(path: Path, rewrite: Callable[[Path], bool]) -> bool:
    """Run `rewrite(temporary)`; when it reports a change, the temporary file replaces `path`."""
    descriptor, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".redacting")
    os.close(descriptor)
    temporary = Path(name)
    try:
        changed = rewrite(temporary)
        if changed:
            os.replace(temporary, path)
        return changed
    finally:
        temporary.unlink(missing_ok=True)


def _redact_bytes(source: Path, temporary: Path, replacements: Replacements) -> bool:
    data = original = source.read_bytes()
    for old, new in replacements:
        data = data.replace(old.encode("utf-8", "surrogatepass"), new.encode())
    if data == original:
        return False
    temporary.write_bytes(data)
    return True


def _redact_parquet(source: Path, temporary: Path, replacements: Replacements) -> bool:
    """Row group by row group (memory stays flat), keeping schema, settings and key-value metadata."""
    parquet = pq.ParquetFile(source)
    schema = parquet.schema_arrow
    metadata = key_value_metadata(parquet)
    redacted_metadata = {key: _replace_text(value, replacements) for key, value in metadata.items()}
    changed = redacted_metadata != metadata
    first_group = parquet.metadata.row_group(0) if parquet.metadata.num_row_groups else None
    # Columns written without statistics are the big JSON text columns (see parquet_io).
    big_text = [
        name
        for index, name in enumerate(schema.names)
        if first_group is not None and not first_group.column(index).is_stats_set
    ]
    sorting = first_group.sorting_columns if first_group is not None else ()
    with ParquetFileWriter(
        temporary,
        schema.remove_metadata(),
        metadata=redacted_metadata,
        big_text_columns=big_text,
        sorted_by=schema.names[sorting[0].column_index] if sorting else None,
    ) as writer:
        for group in range(parquet.metadata.num_row_groups):
            table = parquet.read_row_group(group)
            columns = [_redact_column(column, replacements) for column in table.columns]
            changed |= any(new is not old for new, old in zip(columns, table.columns, strict=True))
            writer.write(pa.Table.from_arrays(columns, schema=table.schema))
    return changed


def key_value_metadata(parquet: pq.ParquetFile) -> dict[str, str]:
    """The footer key-value metadata agentcap wrote (run_id, tasks with prompt previews, …)."""
    stored = parquet.metadata.metadata or {}
    return {key.decode(): value.decode() for key, value in stored.items() if key != b"ARROW:schema"}


def _redact_column(column: pa.ChunkedArray, replacements: Replacements) -> pa.ChunkedArray:
    if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
        return column
    for old, new in replacements:
        if pc.any(pc.match_substring(column, old)).as_py():
            column = pc.replace_substring(column, old, new)
    return column


def _redact_sqlite(source: Path, temporary: Path, replacements: Replacements, *, label: str) -> bool:
    shutil.copyfile(source, temporary)
    try:
        connection = sqlite3.connect(temporary, isolation_level=None)
    except sqlite3.Error as error:
        raise _sqlite_refusal(label, error) from error
    try:
        # secure_delete + VACUUM: the old values must not survive in free pages of the copy.
        connection.execute("PRAGMA secure_delete = ON")
        tables = [
            row[0]
            for row in connection.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            )
        ]
        changed = 0
        connection.execute("BEGIN")
        for table in tables:
            for column in [row[1] for row in connection.execute(f"PRAGMA table_info({_quote(table)})")]:
                for old, new in replacements:
                    changed += connection.execute(
                        f"UPDATE {_quote(table)} SET {_quote(column)} = replace({_quote(column)}, ?, ?) "
                        f"WHERE typeof({_quote(column)}) = 'text' AND instr({_quote(column)}, ?) > 0",
                        (old, new, old),
                    ).rowcount
        connection.execute("COMMIT")
        if changed:
            connection.execute("VACUUM")
    except sqlite3.Error as error:
        raise _sqlite_refusal(label, error) from error
    finally:
        connection.close()
    return changed > 0


def _sqlite_refusal(label: str, error: sqlite3.Error) -> AbortExport:
    return AbortExport(
        f"cannot redact the SQLite trace file {label} ({error}); remove it from the run's traces/ "
        "or clean it by hand, then export again"
    )


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _rescan_output(built: BuiltExport, scanner_name: str) -> None:
    """Scan what will be published: trace files and cards as they are, parquet as rendered plain text.

    Always offline: anything found blocks whatever its status, so verifying would only add risk.
    """
    scanner = get_scanner(scanner_name)
    binary = locate_binary(scanner)
    with tempfile.TemporaryDirectory(prefix="agentcap-rescan-") as scratch:
        groups: dict[Path, list[Path]] = {}
        labels: dict[Path, str] = {}
        for bundle in built.bundles:
            folder = bundle.folder.resolve()
            labels[folder] = bundle.name
            parquet = [file for file in bundle.files if file.path.endswith(".parquet")]
            if not parquet:
                groups[folder] = [folder]
                continue
            groups[folder] = [folder / CARD_FILE] + [
                folder / file.path for file in bundle.files if not file.path.endswith(".parquet")
            ]
            rendered = Path(scratch).resolve() / bundle.name
            labels[rendered] = bundle.name
            groups[rendered] = [
                _render_parquet(bundle.local_path(file), rendered / f"{file.path}.txt") for file in parquet
            ]
        expected = sum(path.stat().st_size for paths in groups.values() for path in _files(paths))
        per_root, _ = scan_groups(scanner, binary, groups, verify=False, expected_bytes=expected)
    # Rendered parquet line numbers mean nothing to a reader: name each file and secret once.
    leftovers = list(
        dict.fromkeys(
            f"{labels[root]}/{finding.file.removesuffix('.txt')} ({finding.detector}, {finding.preview})"
            for root, findings in per_root.items()
            for finding in findings
        )
    )
    if leftovers:
        raise AbortExport(
            f"--redact: the re-scan still finds {len(leftovers)} secret(s) in the output, so nothing was "
            f"published: {'; '.join(leftovers[:5])}"
        )


def _render_parquet(source: Path, target: Path) -> Path:
    """Every value of the file as plain text (one per line) plus its key-value metadata, for the scanner."""
    target.parent.mkdir(parents=True, exist_ok=True)
    parquet = pq.ParquetFile(source)
    with target.open("w", encoding="utf-8", errors="surrogateescape") as out:
        for key, value in key_value_metadata(parquet).items():
            out.write(f"{key}: {value}\n")
        for batch in parquet.iter_batches():
            for column in batch.columns:
                for value in column.to_pylist():
                    if value is not None:
                        out.write(
                            (value if isinstance(value, str) else json.dumps(value, default=str)) + "\n"
                        )
    return target


def _files(paths: list[Path]) -> Iterator[Path]:
    for path in paths:
        if path.is_dir():
            yield from (child for child in path.rglob("*") if child.is_file())
        elif path.is_file():
            yield path
