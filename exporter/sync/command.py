"""`agentcap sync RUNS_DIR URL [--watch SECONDS]`: upload runs so readers of the URL can use them.

Without --watch: one pass, then exit (re-run it any time: only what changed goes up, and a killed
sync resumes). With --watch: a pass every SECONDS until SIGTERM/SIGINT, then a last pass, so a
side-car stopped after its proxy uploads the run's final state.
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from types import FrameType

import click

from exporter.cli_base import Command
from exporter.core.errors import UserError
from exporter.shared.runs import RUNS_DIR_ENV
from exporter.shared.tables import human_bytes
from exporter.storage.location import is_url, shown
from exporter.sync.uploader import Destination, SyncReport, sync_once


@click.command("sync", cls=Command)
@click.argument(
    "runs_dir", type=click.Path(exists=True, file_okay=False, path_type=Path), envvar=RUNS_DIR_ENV
)
@click.argument("url")
@click.option(
    "--watch",
    type=click.FloatRange(min=0.1),
    metavar="SECONDS",
    help="Keep syncing every SECONDS until stopped (SIGTERM/Ctrl-C), then sync once more and exit.",
)
def sync_command(runs_dir: Path, url: str, watch: float | None) -> None:
    """Upload the runs in RUNS_DIR to URL (s3://…, gs://…, hf://buckets/OWNER/NAME/…, file://…).

    Finished runs go up whole; a run still recording goes up as its complete lines only. Only what
    changed is uploaded. Credentials come from the storage's own env/config (e.g. AWS_PROFILE).
    """
    if not is_url(url):
        url = Path(url).resolve().as_uri()  # a local folder (a shared mount) is a file:// URL
    destination = Destination(url)
    if watch is None:
        _finish(_pass(runs_dir, destination), destination)
        return
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()
        signal.signal(signum, signal.SIG_DFL)  # a second signal stops at once

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        _pass(runs_dir, destination)  # the first pass fails loudly: a wrong URL or key is not transient
        while not stop.wait(watch):
            try:
                _pass(runs_dir, destination)
            except UserError as error:  # a side-car outlives a network blip: say it, try again next time
                click.echo(f"warning: {error.message}; retrying in {watch:g} s", err=True)
        _finish(_pass(runs_dir, destination), destination)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _pass(runs_dir: Path, destination: Destination) -> SyncReport:
    def uploaded(relative: str, size: int) -> None:
        click.echo(f"uploaded {relative} ({human_bytes(size)})", err=True)

    return sync_once(runs_dir, destination, report=uploaded)


def _finish(report: SyncReport, destination: Destination) -> None:
    click.echo(
        f"synced {report.runs} run(s) to {shown(destination.url)}: {len(report.uploaded)} file(s) uploaded "
        f"({human_bytes(report.bytes)}), {report.unchanged} unchanged",
        err=True,
    )
