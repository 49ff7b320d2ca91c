"""The `pixyproxy` command: server commands (server.py) and client commands (client.py) in one CLI."""

import typer

from pixyproxy.client import API_KEY_ENV, URL_ENV
from pixyproxy.entrypoints.cli import check, client, server

app = typer.Typer(
    help="PixyProxy: an image-generation proxy. `serve` runs it; `generate`, `edit`, `list`, `show` "
    f"and `download` talk to a running one (--url or ${URL_ENV}; API key from ${API_KEY_ENV}).",
    no_args_is_help=True,
    rich_markup_mode="rich",
)
for commands in (server.app, check.app, client.app):
    for command in commands.registered_commands:
        app.registered_commands.append(command)


def main() -> None:
    app()
