"""Errors that end a command with a one-line message instead of a traceback."""

import click


class UserError(click.ClickException):
    """A mistake the user can fix: printed as one line (what went wrong, what to do next), exit 2."""

    exit_code = 2


class AbortExport(click.ClickException):
    """A stage refused to go on (blocking findings, failed push): printed as one line, exit 1."""

    exit_code = 1


class AbortRun(click.ClickException):
    """`agentcap run` could not go on (the capture proxy failed): one line, exit 1; what was recorded stays."""

    exit_code = 1
