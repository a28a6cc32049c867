"""Export stage 3, publish: the scanned bundles go to local folders (`--output`) or to the Hub (`--push`).

Both targets plan against what the destination already holds with the same planner
(`hub.plan.plan_repo`), so a local export is laid out and updated exactly as a push would be.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from huggingface_hub import HfApi
from rich.console import Console
from rich.markup import escape

from exporter.core.names import DatasetName
from exporter.export.bundles import BuiltExport
from exporter.export.publish.hub.push import print_push_result, publish_to_hub
from exporter.export.publish.local import publish_local
from exporter.export.publish.summary import print_summary


@dataclass(frozen=True)
class HubPush:
    """`--push` and the flags that only make sense with it (`--replace` applies to local exports too)."""

    target: DatasetName
    public: bool = False
    dry_run: bool = False


def publish(
    built: BuiltExport,
    *,
    output: Path,
    replace: bool,
    push: HubPush | None,
    hub_api: HfApi | None,
    console: Console,
    summary: Console,
) -> None:
    """Publish every bundle, then print the summary table (`summary`); progress and notes go to `console`."""
    if push is not None and hub_api is not None:
        pushed = publish_to_hub(
            built, api=hub_api, public=push.public, replace=replace, dry_run=push.dry_run, console=console
        )
        print_summary(summary, built, pushed.destinations())
        print_push_result(summary, pushed)
        return
    destinations = publish_local(
        built, output, replace=replace, note=lambda m: console.print(f"[dim]note:[/] {escape(m)}")
    )
    print_summary(summary, built, destinations)
