"""Rules every command shares, with no I/O libraries: the capture contract, names, values, errors (docs/architecture.md)."""
