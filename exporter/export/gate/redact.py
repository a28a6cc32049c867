"""`--redact`: replace every secret in every staged copy, in every form, then prove it with a re-scan.

Only the staging directory is touched: the build copies traces (never links them), and every
rewrite here goes to a new file that replaces the staged one, so even a hard link could not
reach a run. The raw secrets come from the scanner's output in this process (`SecretBook`) and
from the exact values of `exporter.scan.known`; they are never written anywhere; what replaces
them is `[REDACTED:<detector>:<sha8>]`.

Every file of every bundle is rewritten by its kind (parquet cell by cell, SQLite value by value,
anything else as bytes), and each value through `exporter.scan.decoded.redact`, so a secret is
replaced where a consumer would reconstruct it too: JSON escapes, base64 bodies, streamed deltas.
The re-scan then reads every file and its decoded view, so a new kind of bundle is covered by
construction.
"""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import tempfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from rich.console import Console

from exporter.core.errors import AbortExport
from exporter.export.bundles import CARD_FILE, BuiltExport
from exporter.scan.decoded import (
    SQLITE_MAGIC,
    Replacer,
    quote,
    redact_bytes,
    redact_text,
    sqlite_text_columns,
)
from exporter.scan.engine import ready_scanner, scan_files
from exporter.scan.findings import secret_sha256
from exporter.scan.inputs import scan_targets
from exporter.scan.known import KnownValues, written_forms
from exporter.scan.types import RedactionSummary, ScanFailed, ScanResult, ScanTarget
from exporter.shared.parquet_io import ParquetFileWriter
from exporter.shared.staging import private_workdir

_DETECTOR_SLUG = re.compile(r"[^A-Za-z0-9._-]+")


def redaction_token(detector: str, sha256: str) -> str:
    slug = _DETECTOR_SLUG.sub("-", detector).strip("-") or "secret"
    return f"[REDACTED:{slug}:{sha256[:8]}]"


def redact_export(built: BuiltExport, result: ScanResult, *, console: Console) -> RedactionSummary:
    """Rewrite the staged bundles without the secrets in `result`, then re-scan them; raise unless clean."""
    replacer = _replacer(result)
    changed: list[str] = []
    for index, bundle in enumerate(built.bundles):
        for file in bundle.files:
            if _redact_file(bundle.local_path(file), replacer, label=f"{bundle.name}/{file.path}"):
                changed.append(f"{bundle.name}/{file.path}")
        card = replacer.text(bundle.card)
        if card != bundle.card:
            (bundle.folder / CARD_FILE).write_text(card, encoding="utf-8")
            built.bundles[index] = replace(bundle, card=card)
            changed.append(f"{bundle.name}/{CARD_FILE}")
    secrets = len({finding.sha256 for _, finding in result.findings()})
    console.print(f"redacted {secrets} secret(s) in {len(changed)} staged file(s); re-scanning the output")
    rescan_output(built, result.options.scanner, result.options.known)
    return RedactionSummary(
        secrets=secrets, files_changed=tuple(changed), rescan_scanner=result.options.scanner
    )


def _replacer(result: ScanResult) -> Replacer:
    """Each secret found, and every exact value whether found or not, in each way it can be written."""
    pairs: dict[str, str] = {}
    for _, finding in result.findings():
        secret = result.secrets.secret(finding.sha256)
        if secret is None:
            raise ScanFailed(
                f"cannot redact {finding.location}: the scanner did not hand over the matched text"
            )
        for form in written_forms(secret):
            pairs.setdefault(form, redaction_token(finding.detector, finding.sha256))
    for known in result.options.known.values:
        for form in written_forms(known.value):
            pairs.setdefault(form, redaction_token(known.detector, secret_sha256(known.value)))
    return Replacer(pairs)


def _redact_file(path: Path, replacer: Replacer, *, label: str) -> bool:
    with path.open("rb") as handle:
        head = handle.read(len(SQLITE_MAGIC))
    if path.suffix == ".parquet":
        return _swap_in(path, lambda temporary: _redact_parquet(path, temporary, replacer))
    if head == SQLITE_MAGIC:
        return _swap_in(path, lambda temporary: _redact_sqlite(path, temporary, replacer, label=label))
    return _swap_in(path, lambda temporary: _redact_lines(path, temporary, replacer))


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


def _redact_lines(source: Path, temporary: Path, replacer: Replacer) -> bool:
    """Line by line (JSON lines are rewritten only where a secret hides in a decoded form)."""
    changed = False
    with source.open("rb") as reading, temporary.open("wb") as writing:
        for line in reading:
            body = line.rstrip(b"\r\n")
            redacted = redact_bytes(body, replacer)
            changed |= redacted != body
            writing.write(redacted + line[len(body) :])
    if changed or source.suffix != ".json":
        return changed
    # A pretty-printed JSON document: its escapes span lines, so decode it whole.
    data = source.read_bytes()
    redacted = redact_bytes(data, replacer)
    if redacted == data:
        return False
    temporary.write_bytes(redacted)
    return True


def _redact_parquet(source: Path, temporary: Path, replacer: Replacer) -> bool:
    """Row group by row group (memory stays flat), keeping schema, settings and key-value metadata."""
    parquet = pq.ParquetFile(source)
    schema = parquet.schema_arrow
    metadata = key_value_metadata(parquet)
    redacted_metadata = {key: redact_text(value, replacer) for key, value in metadata.items()}
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
            columns = [_redact_column(column, replacer) for column in table.columns]
            changed |= any(new is not old for new, old in zip(columns, table.columns, strict=True))
            writer.write(pa.Table.from_arrays(columns, schema=table.schema))
    return changed


def key_value_metadata(parquet: pq.ParquetFile) -> dict[str, str]:
    """The footer key-value metadata agentcap wrote (run_id, tasks with prompt previews, …)."""
    stored = parquet.metadata.metadata or {}
    return {key.decode(): value.decode() for key, value in stored.items() if key != b"ARROW:schema"}


def _redact_column(column: pa.ChunkedArray, replacer: Replacer) -> pa.ChunkedArray:
    """Every string in the column, nested ones too (rollout messages are lists of structs)."""
    if not _holds_strings(column.type):
        return column
    values = column.to_pylist()
    redacted = [_redact_value(value, replacer) for value in values]
    if redacted == values:
        return column
    return pa.chunked_array([pa.array(redacted, type=column.type)], type=column.type)


def _holds_strings(kind: pa.DataType) -> bool:
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return True
    if pa.types.is_struct(kind):
        return any(_holds_strings(kind.field(index).type) for index in range(kind.num_fields))
    if pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind):
        return _holds_strings(kind.value_type)
    if pa.types.is_map(kind):
        return _holds_strings(kind.key_type) or _holds_strings(kind.item_type)
    return False


def _redact_value(value: Any, replacer: Replacer) -> Any:
    if isinstance(value, str):
        return redact_text(value, replacer)
    if isinstance(value, dict):
        return {key: _redact_value(item, replacer) for key, item in value.items()}
    if isinstance(value, list):
        return [
            (item[0], _redact_value(item[1], replacer))
            if isinstance(item, tuple)
            else _redact_value(item, replacer)
            for item in value
        ]
    return value


def _redact_sqlite(source: Path, temporary: Path, replacer: Replacer, *, label: str) -> bool:
    shutil.copyfile(source, temporary)
    try:
        connection = sqlite3.connect(temporary, isolation_level=None)
    except sqlite3.Error as error:
        raise _sqlite_refusal(label, error) from error
    try:
        # secure_delete + VACUUM: the old values must not survive in free pages of the copy.
        connection.execute("PRAGMA secure_delete = ON")
        changed = 0
        connection.execute("BEGIN")
        for table, column in list(sqlite_text_columns(connection)):
            # By value, not by rowid: tables WITHOUT ROWID have none, and equal values redact alike.
            select = f"SELECT DISTINCT {quote(column)} FROM {quote(table)}"
            update = f"UPDATE {quote(table)} SET {quote(column)} = ? WHERE {quote(column)} = ?"
            for (value,) in connection.execute(select).fetchall():
                redacted = _redact_cell(value, replacer)
                if redacted != value:
                    changed += connection.execute(update, (redacted, value)).rowcount
        connection.execute("COMMIT")
        if changed:
            connection.execute("VACUUM")
    except sqlite3.Error as error:
        raise _sqlite_refusal(label, error) from error
    finally:
        connection.close()
    return changed > 0


def _redact_cell(value: Any, replacer: Replacer) -> Any:
    if isinstance(value, str):
        return redact_text(value, replacer)
    if isinstance(value, bytes):
        return redact_bytes(value, replacer)
    return value


def _sqlite_refusal(label: str, error: sqlite3.Error) -> AbortExport:
    return AbortExport(
        f"cannot redact the SQLite trace file {label} ({error}); remove it from the run's traces/ "
        "or clean it by hand, then export again"
    )


def rescan_output(built: BuiltExport, scanner_name: str, known: KnownValues) -> None:
    """Scan what will be published: every file of every bundle as it is plus its decoded view (parquet
    only through its view: compressed pages hide strings), and the cards.

    Always offline: anything found blocks whatever its status, so verifying would only add risk.
    """
    ready = ready_scanner(scanner_name)
    scanner, binary = ready.adapter, ready.binary
    with private_workdir(built.staging) as scratch:
        targets: list[ScanTarget] = []
        for number, bundle in enumerate(built.bundles):
            folder = bundle.folder.resolve()
            views = scratch / str(number)
            card = [(folder / CARD_FILE, CARD_FILE)]
            plain = [(bundle.local_path(f), f.path) for f in bundle.files if not f.path.endswith(".parquet")]
            parquet = [(bundle.local_path(f), f.path) for f in bundle.files if f.path.endswith(".parquet")]
            targets += scan_targets(card + plain, root=folder, owner=bundle.name, views=views / "plain")
            targets += scan_targets(
                parquet, root=folder, owner=bundle.name, views=views / "parquet", raw=False
            )
        per_root, _ = scan_files(scanner, binary, targets, verify=False, known=known)
    names = {target.root: target.owner for target in targets}
    # Line numbers of a rendered parquet mean nothing to a reader: name each file and secret once.
    leftovers = list(
        dict.fromkeys(
            f"{names[root]}/{finding.file} ({finding.detector}, {finding.preview})"
            for root, findings in per_root.items()
            for finding in findings
        )
    )
    if leftovers:
        raise AbortExport(
            f"--redact: the re-scan still finds {len(leftovers)} secret(s) in the output, so nothing was "
            f"published: {'; '.join(leftovers[:5])}"
        )
