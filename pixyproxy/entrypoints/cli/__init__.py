"""The `pixyproxy` command: server commands (server.py) and client commands (client.py, jobs.py) in one
CLI."""

from typing import Annotated

import typer

from pixyproxy import __version__
from pixyproxy.client import API_KEY_ENV, URL_ENV
from pixyproxy.entrypoints.cli import check, client, db, jobs, server

app = typer.Typer(
    help="PixyProxy: an image-generation proxy. `serve` runs it; `generate`, `edit`, `list`, `search`, "
    f"`show`, `download`, `delete`, `usage` and `jobs` talk to a running one (--url or ${URL_ENV}; API "
    f"key from ${API_KEY_ENV}).",
    no_args_is_help=True,
    rich_markup_mode="rich",
)
for commands in (server.app, check.app, client.app):
    for command in commands.registered_commands:
        app.registered_commands.append(command)
app.add_typer(db.app, name="db", help="The metadata schema (Alembic): current, upgrade, history.")
app.add_typer(jobs.app, name="jobs")


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"pixyproxy {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    pass


def main() -> None:
    app()
