"""Package list for setuptools; everything else is in pyproject.toml.

The capture addon's source of truth is addons/agentcap.py (a single mitmproxy script). It ships in
the wheel as the `agentcap_addon` package, mapped from that folder, so the installed copy is always
the repository's file and `agentcap addon-path` can find it after a plain `pip install`.
"""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["exporter", "exporter.*"]), "agentcap_addon"],
    package_dir={"agentcap_addon": "addons"},
)
