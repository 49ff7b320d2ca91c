"""The `pixyproxy` command: serve, init, gc."""

import asyncio
from datetime import timedelta

import typer

from pixyproxy.settings import Settings

# How `serve` runs uvicorn; bench/ serves its plain-stack baseline with the same options. uvloop and
# httptools come with uvicorn[standard]: named here so a missing one fails loudly instead of falling back.
UVICORN_OPTIONS = {
    "loop": "uvloop",
    "http": "httptools",
    "log_config": None,
    "access_log": False,
    "server_header": False,
    "timeout_graceful_shutdown": 30,
}

app = typer.Typer(help="PixyProxy: an image-generation proxy.", no_args_is_help=True)


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8001, help="Port to listen on."),
    workers: int = typer.Option(1, min=1, help="Worker processes (the service is stateless)."),
) -> None:
    """Run the HTTP service."""
    import uvicorn

    from pixyproxy.entrypoints.logging_setup import configure_logging

    settings = Settings()
    configure_logging(settings.log_level)
    uvicorn.run(
        "pixyproxy.entrypoints.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        **UVICORN_OPTIONS,
    )


@app.command()
def init() -> None:
    """Create the schema and the storage (folder or bucket); safe to run again."""
    from pixyproxy.container import Container

    async def run() -> None:
        container = Container()
        repository, blobs = container.repository(), container.blobs()
        try:
            await repository.init()
            await blobs.init()
        finally:
            await repository.close()
            await blobs.close()
        typer.echo(f"initialised metadata ({repository.name}) and storage ({blobs.name})")

    asyncio.run(run())


@app.command()
def gc(
    grace_seconds: int = typer.Option(None, help="Keep orphans younger than this (default from settings)."),
) -> None:
    """Remove stored image bytes that no metadata row points at (left by crashes or failed writes)."""
    from pixyproxy.container import Container

    async def run() -> list[str]:
        container = Container()
        grace = grace_seconds if grace_seconds is not None else container.settings().gc_grace_seconds
        try:
            return await container.image_service().collect_garbage(timedelta(seconds=grace))
        finally:
            await container.repository().close()
            await container.blobs().close()

    removed = asyncio.run(run())
    typer.echo(f"removed {len(removed)} orphan blob(s)")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
