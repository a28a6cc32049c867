"""Local publish: the staged bundles into `--output`, laid out and updated exactly as a Hub push would.

`<output>/<owner>/<name>/...` per bundle and `<output>/<owner>/collection.json`. What to copy is
decided by the push's own planner (`exporter.export.publish.hub.plan.plan_repo`) against what the folder already
holds, so the two publish targets cannot drift apart:
- a run already in the folder is skipped (with `replace`, its old files are replaced), unless
  it was exported while still recording: then this export replaces it (see `plan_repo`);
- an existing dataset card keeps everything but its generated parts (people edit them);
- `.agentcap/index.json` records which files belong to which run, as in a pushed repo.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

from exporter.export.bundles import CARD_FILE, BuiltExport
from exporter.export.publish.destination import INDEX_PATH, read_folder
from exporter.export.publish.hub.plan import UPDATED_NOTE, plan_repo
from exporter.shared.paths import contained

COLLECTION_FILE = "collection.json"


def publish_local(
    built: BuiltExport, output: Path, *, replace: bool = False, note: Callable[[str], None] = print
) -> dict[str, str]:
    """Copy every bundle under `output`; returns bundle name → the folder it went to."""
    destinations: dict[str, str] = {}
    for bundle in built.bundles:
        target = contained(output, built.owner, bundle.name)
        plan = plan_repo(
            bundle,
            owner=built.owner,
            remote=read_folder(target, bundle.repo_id(built.owner), warn=note),
            replace=replace,
            snapshots=built.snapshots,
            scans=built.card_scans,
            scan_section=built.scan_section,
            license_id=built.license,
        )
        for path in plan.deletes:
            contained(target, path).unlink(missing_ok=True)
        for file in plan.uploads:
            destination = contained(target, file.path)
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(bundle.local_path(file), destination)
        if plan.write_card:
            target.mkdir(parents=True, exist_ok=True)
            contained(target, CARD_FILE).write_text(plan.card, encoding="utf-8")
        index = contained(target, INDEX_PATH)
        index.parent.mkdir(parents=True, exist_ok=True)
        index.write_bytes(plan.index)
        for run in plan.skipped_runs:
            note(
                f"{plan.repo_id}: run {run} is already in {target}; skipped (delete its files to export it again)"
            )
        for run in plan.updated_runs:
            note(f"{plan.repo_id}: {UPDATED_NOTE.format(run=run)}")
        destinations[bundle.name] = str(target)
    write_collection(built, contained(output, built.owner, COLLECTION_FILE))
    return destinations


def write_collection(built: BuiltExport, path: Path) -> None:
    """The collection file, keeping items of earlier exports (as the Hub collection would)."""
    collection = built.collection()
    if path.is_file():
        try:
            earlier = json.loads(path.read_text(encoding="utf-8")).get("items", [])
        except (ValueError, AttributeError):
            earlier = []
        known = {item["id"] for item in collection["items"]}
        kept = [item for item in earlier if isinstance(item, dict) and item.get("id") not in known]
        collection["items"] = kept + collection["items"]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(collection, indent=2) + "\n", encoding="utf-8")
