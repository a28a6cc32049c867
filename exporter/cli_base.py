"""What every command shares: its click class (errors → one line and an exit code) and its options.

Library code raises `exporter.core.errors` types and never imports click; this is the one place
that decides how they look and which exit code they mean. Every command is declared with
`cls=Command` (or `cls=Group`), so the mapping holds however the command is invoked: through
`agentcap`, through `agentcap-export`, or directly (as the tests do with click's CliRunner).
"""

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import click

from exporter.core.errors import AbortExport, AbortRun, AgentcapError, UserError
from exporter.shared.prices import PRICES_ENV
from exporter.shared.runs import DEFAULT_RUNS_DIR, RUNS_DIR_ENV
from exporter.storage import Location, parse_location

HELP_OPTIONS: dict[str, Any] = {"help_option_names": ["-h", "--help"]}


class OneLineError(click.ClickException):
    """An agentcap error as click shows it: `Error: <message>` on stderr, then exit 2 (a user mistake)."""

    exit_code = 2


class RefusedError(OneLineError):
    """A stage refused to go on (blocking findings, failed push, a capture proxy that died): exit 1."""

    exit_code = 1


# Most specific type first: the first match decides how an error ends the command.
ERROR_CLASSES: tuple[tuple[type[AgentcapError], type[OneLineError]], ...] = (
    (AbortExport, RefusedError),
    (AbortRun, RefusedError),
    (UserError, OneLineError),
    (AgentcapError, OneLineError),
)


def one_line(error: AgentcapError) -> OneLineError:
    """The click exception that prints `error` as one line and exits with its code."""
    shown = next(shown for kind, shown in ERROR_CLASSES if isinstance(error, kind))
    return shown(error.message)


class Command(click.Command):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except AgentcapError as error:
            raise one_line(error) from error


class Group(click.Group):
    command_class = Command

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except AgentcapError as error:
            raise one_line(error) from error


def warn(message: str) -> None:
    """A warning line on stderr (commands pass this where library code takes a `warn` callback)."""
    click.echo(f"warning: {message}", err=True)


Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


class LocationType(click.ParamType[Location, Any]):
    """A runs dir: a local path (kept as `Path`) or a URL such as s3://bucket/runs (`Url`)."""

    name = "PATH|URL"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Location:
        return value if isinstance(value, Path) else parse_location(str(value))


LOCATION = LocationType()


def runs_dir_option(
    looked_up: str = "run ids and --all", *, purpose: str | None = None, urls: bool = False
) -> Decorator:
    """--runs-dir; `urls`: for commands that only read runs, a URL (s3://…) is taken too."""
    return click.option(
        "--runs-dir",
        type=LOCATION if urls else click.Path(file_okay=False, path_type=Path),
        envvar=RUNS_DIR_ENV,
        default=DEFAULT_RUNS_DIR,
        show_default=True,
        help=f"{purpose or f'Where {looked_up} are looked up'} (env {RUNS_DIR_ENV}).",
    )


def browse_target_options(looked_up: str) -> Decorator:
    """--runs-dir and --revision of the commands whose one TARGET may be a run, a parquet file or a Hub
    dataset (inspect, stats, report): --runs-dir defaults to "not given", so a bare name can be told
    apart from OWNER/NAME."""

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        command = click.option(
            "--revision", default=None, help="Hub datasets: the branch, tag or commit to read."
        )(command)
        return click.option(
            "--runs-dir",
            type=click.Path(path_type=Path, file_okay=False),
            envvar=RUNS_DIR_ENV,
            default=None,
            help=f"Where runs live (default: runs, or ${RUNS_DIR_ENV}); also where {looked_up} are looked up.",
        )(command)

    return decorate


def run_targets(verb: str) -> Decorator:
    """TARGET... (runs dir, run dir or run id), --all and --runs-dir."""

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        command = runs_dir_option(urls=True)(command)
        command = click.option("--all", "all_runs", is_flag=True, help=f"{verb} every run in the runs dir.")(
            command
        )
        return click.argument("targets", nargs=-1)(command)

    return decorate


SCANNER_ENV = "AGENTCAP_SCANNER"


def scanner_options(names: Sequence[str], default: str) -> Decorator:
    """--scanner, --block-on, --no-verify, --rescan, --redact-values: the same for `scan` and `export`."""
    decorators = [
        click.option(
            "--scanner",
            type=click.Choice(list(names)),
            default=default,
            show_default=True,
            envvar=SCANNER_ENV,
            help=f"Secret scanner to run (env {SCANNER_ENV}).",
        ),
        click.option(
            "--block-on",
            type=click.Choice(["verified", "any"]),
            default=None,
            help="Findings that block: verified hits (default) or any hit (the default with --no-verify).",
        ),
        click.option(
            "--no-verify",
            is_flag=True,
            help="Never send candidates to their issuers to check them (offline; see docs/scan.md).",
        ),
        click.option("--rescan", is_flag=True, help="Ignore cached scan results and scan again."),
        click.option(
            "--redact-values",
            "values_file",
            type=click.Path(dir_okay=False, path_type=Path),
            help="File of exact values (one per line) that must never be published: found like verified "
            "secrets (they block), replaced by --redact. This machine's credential env vars always count.",
        ),
    ]

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        for decorator in reversed(decorators):
            command = decorator(command)
        return command

    return decorate


def prices_option(command: Callable[..., Any]) -> Callable[..., Any]:
    """--prices FILE: the price table costs come from (shared/prices.py; default: the shipped estimate)."""
    return click.option(
        "--prices",
        type=click.Path(path_type=Path, dir_okay=False),
        envvar=PRICES_ENV,
        default=None,
        help="Price table (TOML, docs/stats.md#prices; env AGENTCAP_PRICES). Default: shipped list prices, an estimate.",
    )(command)
