"""agentcap exporter: read capture runs, build datasets, scan them and publish them."""

__version__ = "0.1.0"
