"""agentcap exporter: read capture runs, build datasets, scan them and publish them."""

from importlib.metadata import version

# The one version, set in addons/agentcap.py (ADDON_VERSION) and read by the build into the metadata.
__version__ = version("agentcap")
