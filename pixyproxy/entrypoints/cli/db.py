"""`pixyproxy db`: the metadata schema for operators (Alembic's revisions, on the configured database)."""

import typer

from pixyproxy.entrypoints.cli.server import run_reporting, server_extra

app = typer.Typer(no_args_is_help=True)


def _database():
    with server_extra():
        from pixyproxy.container import Container

    return Container().database()


@app.command()
def current() -> None:
    """The revision the database is at, and the newest this PixyProxy knows."""
    database = _database()

    async def run() -> tuple[str | None, str]:
        try:
            return await database.revision()
        finally:
            await database.close()

    revision, head = run_reporting(run())
    state = "up to date" if revision == head else "behind: run `pixyproxy db upgrade`"
    typer.echo(f"{revision or '(none)'} (newest known: {head}; {state})")


@app.command()
def upgrade() -> None:
    """Bring the database to the newest revision (what `pixyproxy init` and every start do)."""
    database = _database()

    async def run() -> str | None:
        try:
            await database.init()
            return (await database.revision())[0]
        finally:
            await database.close()

    typer.echo(f"at revision {run_reporting(run())}")


@app.command()
def history() -> None:
    """Every revision this PixyProxy knows, newest first."""
    with server_extra():
        from pixyproxy.adapters.sql import schema

    for revision, down, doc in schema.history():
        typer.echo(f"{down or '<base>'} -> {revision}: {doc}")
