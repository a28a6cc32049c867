"""Export stage 3 (stage.py): the scanned bundles to local folders or to the Hub."""
