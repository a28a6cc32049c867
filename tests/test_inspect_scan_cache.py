"""Inspect shows the findings of the last scan of a run (the scan's per-run cache), not only reports."""

from pathlib import Path

from factories import make_record, write_run

from exporter.inspect.sources import scan_findings
from exporter.scan.cache import CacheKey, store_cached
from exporter.scan.findings import Finding
from exporter.shared.runs import list_runs


def test_findings_come_from_the_scan_cache(tmp_path: Path) -> None:
    write_run(tmp_path, "run-a", [make_record(seq=1)])
    write_run(tmp_path, "run-b", [make_record(seq=1)])
    finding = Finding(
        scanner="kingfisher",
        detector="github-pat",
        file="captures.jsonl",
        line=1,
        status="unverified",
        sha256="a" * 64,
        preview="ghp_…wxyz",
    )
    key = CacheKey(content_sha256="0" * 64, scanner="kingfisher", scanner_version="2.14.0", options=())
    assert store_cached(tmp_path / "run-a", key, [finding])
    by_run = {run.run_id: scan_findings(run, []) for run in list_runs(tmp_path)}
    assert by_run == {"run-a": [finding.to_dict()], "run-b": []}
