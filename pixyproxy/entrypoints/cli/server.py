"""The commands that run the service or work on its stores (need the `server` extra)."""

import asyncio
import contextlib
import dataclasses
import logging
import os
import shutil
import tempfile
from collections.abc import Coroutine, Iterator
from datetime import timedelta
from typing import Any, TypeVar
from uuid import UUID

import typer
from rich.console import Console
from rich.markup import escape

# How `serve` runs uvicorn; bench/ serves its plain-stack baseline with the same options. uvloop and
# httptools come with uvicorn[standard]: named here so a missing one fails loudly instead of falling back.
UVICORN_OPTIONS: dict[str, Any] = {
    "loop": "uvloop",
    "http": "pixyproxy.entrypoints.http_protocol:JsonErrorHttpToolsProtocol",  # httptools, JSON 400s
    "log_config": None,
    "access_log": False,
    "server_header": False,
}
T = TypeVar("T")
SERVER_EXTRA = "the server needs the 'server' extra: pip install 'pixyproxy[server]'"

app = typer.Typer()
err = Console(stderr=True, soft_wrap=True)


@contextlib.contextmanager
def server_extra() -> Iterator[None]:
    try:
        yield
    except ModuleNotFoundError as exc:
        err.print(f"[red]error:[/red] {escape(SERVER_EXTRA)} (missing module {exc.name!r})", highlight=False)
        raise typer.Exit(1) from exc


def run_reporting(work: Coroutine[Any, Any, T]) -> T:
    """Run a command's work; a store it cannot use (unreachable, a schema newer than this code) is one
    line on stderr and exit status 1, not a traceback."""
    from pixyproxy.domain.errors import DependencyUnavailable

    try:
        return asyncio.run(work)
    except DependencyUnavailable as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False)
        raise typer.Exit(1) from None


@app.command()
def serve(
    # Defaults come from the settings (PIXYPROXY_HOST ... or settings.py), read only when serving.
    host: str = typer.Option(None, help="Address to listen on. Default: $PIXYPROXY_HOST or 127.0.0.1."),
    port: int = typer.Option(None, help="Port to listen on. Default: $PIXYPROXY_PORT or 8001."),
    workers: int = typer.Option(None, min=1, help="Worker processes. Default: $PIXYPROXY_WORKERS or 1."),
    graceful_timeout: int = typer.Option(
        None, min=0, help="On SIGTERM, seconds for in-flight requests to finish. Default: 30."
    ),
    server: str = typer.Option(
        None, help="The ASGI server: uvicorn or granian. Default: $PIXYPROXY_SERVER or uvicorn."
    ),
) -> None:
    """Run the HTTP service."""
    if server not in (None, "uvicorn", "granian"):
        err.print(
            f"[red]error:[/red] --server must be uvicorn or granian, not {escape(server)!r}", highlight=False
        )
        raise typer.Exit(2)
    with server_extra():
        from pixyproxy.entrypoints.configuration import validated_settings
        from pixyproxy.entrypoints.logging_setup import configure_logging
        from pixyproxy.settings import PROMETHEUS_MULTIPROC_ENV, ConfigurationError

    try:  # the same validation as `pixyproxy check`: a line per problem, no traceback
        validated = validated_settings()
    except ConfigurationError as exc:
        for problem in exc.problems:
            err.print(f"[red]error:[/red] {escape(problem)}", highlight=False)
        raise typer.Exit(2) from None
    settings = validated.settings
    configure_logging(settings.log_level)
    for warning in validated.warnings:
        logging.getLogger("pixyproxy").warning(warning)
    from pixyproxy.container import check_models_file

    try:
        check_models_file(settings)
    except ValueError as exc:  # one line naming the entry and the field, no traceback
        err.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False)
        raise typer.Exit(2) from None
    run_reporting(_schema_upgraded())  # once, before any worker starts; a refusal is one line
    workers = workers or settings.workers
    # Several workers share one port: /metrics must add up every worker's figures, which
    # prometheus-client does through files in a shared folder (its multiprocess mode).
    metrics_dir = None
    if workers > 1 and settings.prometheus_multiproc_dir is None:
        metrics_dir = tempfile.mkdtemp(prefix="pixyproxy-metrics-")
        os.environ[PROMETHEUS_MULTIPROC_ENV] = metrics_dir  # read by every worker's Settings and client
    listen = ListenOn(
        host=host or settings.host,
        port=port or settings.port,
        workers=workers,
        graceful_timeout=settings.graceful_timeout if graceful_timeout is None else graceful_timeout,
    )
    try:
        with server_extra():
            if (server or settings.server) == "granian":
                _run_granian(listen, settings.log_level)
            else:
                _run_uvicorn(listen)
    finally:
        if metrics_dir:
            shutil.rmtree(metrics_dir, ignore_errors=True)


@dataclasses.dataclass(frozen=True)
class ListenOn:
    host: str
    port: int
    workers: int
    graceful_timeout: int


APP_FACTORY = "pixyproxy.entrypoints.app:serve_app"


def _run_uvicorn(listen: ListenOn) -> None:
    import uvicorn

    uvicorn.run(
        APP_FACTORY,
        factory=True,
        host=listen.host,
        port=listen.port,
        workers=listen.workers,
        timeout_graceful_shutdown=listen.graceful_timeout,
        **UVICORN_OPTIONS,
    )


def _run_granian(listen: ListenOn, log_level: str) -> None:
    """Granian, a Rust ASGI server. Its own log says only warnings (the service writes the request lines);
    it answers malformed HTTP itself, in plain text (docs/operations.md)."""
    from granian import Granian
    from granian.constants import Interfaces, Loops
    from granian.log import LogLevels

    level = log_level.lower()
    Granian(
        APP_FACTORY,
        factory=True,
        address=listen.host,
        port=listen.port,
        interface=Interfaces.ASGI,
        workers=listen.workers,
        loop=Loops.uvloop,
        log_level=LogLevels(level) if level not in ("debug", "info") else LogLevels.warning,
        log_access=False,
        workers_kill_timeout=listen.graceful_timeout or None,
    ).serve()


async def _schema_upgraded() -> None:
    from pixyproxy.container import Container

    database = Container().database()
    try:
        await database.init()
    finally:
        await database.close()


@app.command()
def init() -> None:
    """Create the schema and the storage (folder or bucket); safe to run again."""
    with server_extra():
        from pixyproxy.container import Container, done

    async def run() -> str:
        container = Container()
        repository, blobs = await done(container.storage.init())
        await done(container.job_storage.init())  # the jobs table, beside the images'
        outbox = container.webhook_outbox()  # and the webhook outbox, so no first job has to create it
        await outbox.init()
        await outbox.close()
        try:
            return f"initialised metadata ({repository.name}) and storage ({blobs.name})"
        finally:
            await done(container.shutdown_resources())

    typer.echo(run_reporting(run()))


@app.command()
def reindex() -> None:
    """Index the words of every stored image again, adding only what is missing (run it after an
    upgrade during which processes of an older version stored images); safe to run any time."""
    with server_extra():
        from pixyproxy.container import Container, done

    async def run() -> int:
        container = Container()
        repository, _ = await done(container.storage.init())
        try:
            return await repository.reindex_words()
        finally:
            await done(container.shutdown_resources())

    typer.echo(f"read the words of {run_reporting(run())} stored image(s)")


@app.command()
def gc(
    grace_seconds: int = typer.Option(None, help="Keep orphans younger than this (default from settings)."),
) -> None:
    """Delete images older than PIXYPROXY_RETENTION_DAYS (when set), then remove rows whose bytes are
    missing (nothing can rebuild them), then stored bytes that no metadata row points at (left by
    crashes, failed writes or deletes the store did not finish)."""
    with server_extra():
        from pixyproxy.container import Container, done

    async def run() -> tuple[int | None, list[UUID], list[str]]:
        container = Container()
        config = container.settings()
        grace = grace_seconds if grace_seconds is not None else config.gc_grace_seconds
        await done(container.storage.init())
        try:
            collector = container.garbage_collector()
            expired = None
            if config.retention_days is not None:
                retention = timedelta(days=config.retention_days)
                expired = await collector.remove_expired(retention, config.retention_batch_size)
            broken = await collector.remove_rows_without_bytes(timedelta(seconds=grace))
            return expired, broken, await collector.remove_orphans(timedelta(seconds=grace))
        finally:
            await done(container.shutdown_resources())

    expired, broken, removed = run_reporting(run())
    if expired is not None:
        typer.echo(f"deleted {expired} image(s) past retention")
    typer.echo(f"removed {len(broken)} row(s) whose bytes were missing")
    typer.echo(f"removed {len(removed)} orphan blob(s)")
