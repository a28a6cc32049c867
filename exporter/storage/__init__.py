"""Where runs live: a local directory, or any fsspec URL (s3://, gs://, hf://buckets/…, file://, memory://).

`parse_location` turns what a user typed into a `Location` (a local `Path`, or a `Url`);
`RemotePath` is a listed URL that readers use like a `Path` (list, stat, stream, read lines), so
the readers need no second code path. Credentials are the storage's own business: fsspec's
backends read their usual env and config files, and nothing here ever prints them.
"""

from exporter.storage.location import Location, StorageError, Url, parse_location, storage_errors
from exporter.storage.remote import RemotePath, list_url, stage_files

__all__ = [
    "Location",
    "RemotePath",
    "StorageError",
    "Url",
    "list_url",
    "parse_location",
    "stage_files",
    "storage_errors",
]
