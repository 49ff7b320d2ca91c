"""The commands that run the service or work on its stores (need the `server` extra)."""

import asyncio
import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from datetime import timedelta

import typer
from rich.console import Console
from rich.markup import escape

# How `serve` runs uvicorn; bench/ serves its plain-stack baseline with the same options. uvloop and
# httptools come with uvicorn[standard]: named here so a missing one fails loudly instead of falling back.
UVICORN_OPTIONS = {
    "loop": "uvloop",
    "http": "httptools",
    "log_config": None,
    "access_log": False,
    "server_header": False,
}
SERVER_EXTRA = "the server needs the 'server' extra: pip install 'pixyproxy[server]'"

app = typer.Typer()
err = Console(stderr=True, soft_wrap=True)


@contextlib.contextmanager
def _server_extra() -> Iterator[None]:
    try:
        yield
    except ModuleNotFoundError as exc:
        err.print(f"[red]error:[/red] {escape(SERVER_EXTRA)} (missing module {exc.name!r})", highlight=False)
        raise typer.Exit(1) from exc


@app.command()
def serve(
    # Defaults come from the settings (PIXYPROXY_HOST ... or settings.py), read only when serving.
    host: str = typer.Option(None, help="Address to listen on. Default: $PIXYPROXY_HOST or 127.0.0.1."),
    port: int = typer.Option(None, help="Port to listen on. Default: $PIXYPROXY_PORT or 8001."),
    workers: int = typer.Option(None, min=1, help="Worker processes. Default: $PIXYPROXY_WORKERS or 1."),
    graceful_timeout: int = typer.Option(
        None, min=0, help="On SIGTERM, seconds for in-flight requests to finish. Default: 30."
    ),
) -> None:
    """Run the HTTP service."""
    with _server_extra():
        import uvicorn

        from pixyproxy.entrypoints.logging_setup import configure_logging
        from pixyproxy.settings import PROMETHEUS_MULTIPROC_ENV, Settings

    settings = Settings()
    configure_logging(settings.log_level)
    from pixyproxy.container import check_models_file

    try:
        check_models_file(settings)
    except ValueError as exc:  # one line naming the entry and the field, no traceback
        err.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False)
        raise typer.Exit(2) from None
    workers = workers or settings.workers
    # Several workers share one port: /metrics must add up every worker's figures, which
    # prometheus-client does through files in a shared folder (its multiprocess mode).
    metrics_dir = None
    if workers > 1 and settings.prometheus_multiproc_dir is None:
        metrics_dir = tempfile.mkdtemp(prefix="pixyproxy-metrics-")
        os.environ[PROMETHEUS_MULTIPROC_ENV] = metrics_dir  # read by every worker's Settings and client
    try:
        uvicorn.run(
            "pixyproxy.entrypoints.app:create_app",
            factory=True,
            host=host or settings.host,
            port=port or settings.port,
            workers=workers,
            timeout_graceful_shutdown=settings.graceful_timeout
            if graceful_timeout is None
            else graceful_timeout,
            **UVICORN_OPTIONS,
        )
    finally:
        if metrics_dir:
            shutil.rmtree(metrics_dir, ignore_errors=True)


@app.command()
def init() -> None:
    """Create the schema and the storage (folder or bucket); safe to run again."""
    with _server_extra():
        from pixyproxy.container import Container

    async def run() -> str:
        container = Container()
        repository, blobs = await container.storage.init()
        await container.job_storage.init()  # the jobs table, beside the images'
        outbox = container.webhook_outbox()  # and the webhook outbox, so no first job has to create it
        await outbox.init()
        await outbox.close()
        try:
            return f"initialised metadata ({repository.name}) and storage ({blobs.name})"
        finally:
            await container.shutdown_resources()

    typer.echo(asyncio.run(run()))


@app.command()
def reindex() -> None:
    """Index the words of every stored image again, adding only what is missing (run it after an
    upgrade during which processes of an older version stored images); safe to run any time."""
    with _server_extra():
        from pixyproxy.container import Container

    async def run() -> int:
        container = Container()
        repository, _ = await container.storage.init()
        try:
            return await repository.reindex_words()
        finally:
            await container.shutdown_resources()

    typer.echo(f"read the words of {asyncio.run(run())} stored image(s)")


@app.command()
def gc(
    grace_seconds: int = typer.Option(None, help="Keep orphans younger than this (default from settings)."),
) -> None:
    """Delete images older than PIXYPROXY_RETENTION_DAYS (when set), then remove stored bytes that no
    metadata row points at (left by crashes, failed writes or deletes the store did not finish)."""
    with _server_extra():
        from pixyproxy.container import Container

    async def run() -> tuple[int | None, list[str]]:
        container = Container()
        config = container.settings()
        grace = grace_seconds if grace_seconds is not None else config.gc_grace_seconds
        await container.storage.init()
        try:
            collector = container.garbage_collector()
            expired = None
            if config.retention_days is not None:
                retention = timedelta(days=config.retention_days)
                expired = await collector.remove_expired(retention, config.retention_batch_size)
            return expired, await collector.remove_orphans(timedelta(seconds=grace))
        finally:
            await container.shutdown_resources()

    expired, removed = asyncio.run(run())
    if expired is not None:
        typer.echo(f"deleted {expired} image(s) past retention")
    typer.echo(f"removed {len(removed)} orphan blob(s)")
