"""Where the capture addon is installed: for `agentcap addon-path` and for the proxy `agentcap run` starts.

The addon ships inside the package as `agentcap_addon/agentcap.py` (built from addons/agentcap.py;
an editable install maps it to that very file), so this works after a plain `pip install agentcap`.
"""

from importlib.util import find_spec
from pathlib import Path

from exporter.core.errors import UserError

ADDON_MODULE = "agentcap_addon.agentcap"


def addon_path() -> Path:
    """The installed addon script, found without importing it (it imports mitmproxy)."""
    try:
        spec = find_spec(ADDON_MODULE)
    except ModuleNotFoundError:
        spec = None
    if spec is None or spec.origin is None or not Path(spec.origin).is_file():
        raise UserError("the capture addon is not installed with this agentcap; reinstall agentcap")
    return Path(spec.origin)
