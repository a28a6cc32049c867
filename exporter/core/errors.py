"""The errors agentcap expects, as types of its own: library code raises them, the CLI alone words them.

Each carries one line for the user (what went wrong, what to do next). Which exit code a type means
is decided in one place, `exporter.cli_base`, so nothing below the command line imports click.
"""


class AgentcapError(Exception):
    """An expected failure: shown as its one-line message, never as a traceback."""

    @property
    def message(self) -> str:
        return str(self)


class UserError(AgentcapError):
    """A mistake the user can fix (bad input, missing tool, unreadable run): exit 2."""


class AbortExport(AgentcapError):
    """A stage refused to go on (blocking findings, failed push): exit 1."""


class AbortRun(AgentcapError):
    """`agentcap run` could not go on (the capture proxy failed): exit 1; what was recorded stays."""
