"""Click options shared by every command that reads runs, so they read and document them alike."""

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from exporter.runs import DEFAULT_RUNS_DIR, RUNS_DIR_ENV
from exporter.storage import Location, parse_location

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


class LocationType(click.ParamType):
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


def run_targets(verb: str) -> Decorator:
    """TARGET... (runs dir, run dir or run id), --all and --runs-dir."""

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        command = runs_dir_option(urls=True)(command)
        command = click.option("--all", "all_runs", is_flag=True, help=f"{verb} every run in the runs dir.")(
            command
        )
        return click.argument("targets", nargs=-1)(command)

    return decorate
