"""What the gate scans for a run: the plain-text files an export publishes, their views, their hash.

captures.jsonl is scanned rather than the parquet made from it: scanners read bytes, and zstd
pages hide strings. run.json feeds columns and metadata, traces/ is bundled as-is. Beside each
file the scanner also reads its decoded view (`exporter.scan.decoded`): the text a consumer gets
back by parsing JSON escapes, decoding base64 bodies and joining streamed deltas. The scan cache
file sits beside them and is never an input; a link anywhere is refused, never followed.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from exporter.core.record import CAPTURES_FILE, RUN_FILE
from exporter.scan.decoded import render_view
from exporter.scan.types import ScanInputs, ScanTarget
from exporter.shared.runs import RunDir

CACHE_FILE_NAME = ".agentcap-scan.json"
VIEW_SUFFIX = ".decoded"


def scan_inputs(run: RunDir) -> ScanInputs:
    root = run.local.resolve()
    files = [root / name for name in (CAPTURES_FILE, RUN_FILE) if (root / name).is_file()]
    files += [root / path.relative_to(run.local) for path in run.trace_files()]
    files = sorted(file for file in files if file.name != CACHE_FILE_NAME)
    manifest = hashlib.sha256()
    total = 0
    for file in files:
        relative = file.relative_to(root).as_posix()
        with file.open("rb") as handle:
            digest = hashlib.file_digest(handle, "sha256").hexdigest()
        size = file.stat().st_size
        manifest.update(f"{relative}\0{size}\0{digest}\n".encode("utf-8", "surrogateescape"))
        total += size
    return ScanInputs(root=root, files=tuple(files), bytes=total, content_sha256=manifest.hexdigest())


def scan_targets(
    files: list[tuple[Path, str]], *, root: Path, owner: str, views: Path, raw: bool = True
) -> list[ScanTarget]:
    """Each (file, label) as a target, plus its decoded view (written under `views`) when it has one.

    `raw=False` leaves the file itself out (parquet: compressed pages, its view holds every value).
    """
    targets = []
    for number, (file, label) in enumerate(files):
        if raw:
            targets.append(ScanTarget(path=file, root=root, owner=owner, label=label))
        view = views / str(number) / (file.name + VIEW_SUFFIX)
        lines = render_view(file, view)
        if view.stat().st_size:
            targets.append(ScanTarget(path=view.resolve(), root=root, owner=owner, label=label, lines=lines))
    return targets
