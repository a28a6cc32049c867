"""Local publish: copy the staged bundles to `--output`, laid out exactly as the Hub push would be.

`<output>/<owner>/<name>/...` per bundle and `<output>/<owner>/collection.json`. An existing dataset
card is left untouched (people edit them); files of earlier exports stay, as they would on the Hub.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from exporter.bundle import CARD_FILE, BuiltExport

COLLECTION_FILE = "collection.json"


def publish_local(built: BuiltExport, output: Path) -> dict[str, str]:
    """Copy every bundle under `output`; returns bundle name → the folder it went to."""
    destinations: dict[str, str] = {}
    for bundle in built.bundles:
        target = output / built.owner / bundle.name
        for file in bundle.files:
            destination = target / file.path
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(bundle.local_path(file), destination)
        card = target / CARD_FILE
        if not card.exists():
            card.write_text(bundle.card, encoding="utf-8")
        destinations[bundle.name] = str(target)
    write_collection(built, output / built.owner / COLLECTION_FILE)
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
