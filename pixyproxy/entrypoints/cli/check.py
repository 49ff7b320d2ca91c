"""`pixyproxy check`: is the configuration right, and can it reach everything it names?"""

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from pixyproxy.entrypoints.cli.server import server_extra

app = typer.Typer()
out = Console(soft_wrap=True, highlight=False)
err = Console(stderr=True, soft_wrap=True, highlight=False)
PROBE_BYTES = b"pixyproxy check: a probe object, deleted at once"


@dataclass(frozen=True)
class Reached:
    dependency: str
    ok: bool | None  # None: not configured, nothing to reach
    detail: str


@app.command()
def check(
    timeout: float = typer.Option(15.0, min=0.1, help="Seconds each dependency may take to answer."),
) -> None:
    """Print the effective configuration (secrets masked), validate it, and reach the database, the
    storage, Redis and the generator; exit 1 with one line per problem."""
    with server_extra():
        from pixyproxy import __version__
        from pixyproxy.container import Container
        from pixyproxy.entrypoints.configuration import effective_configuration, validated_settings
        from pixyproxy.entrypoints.logging_setup import configure_logging
        from pixyproxy.settings import ConfigurationError

    try:
        validated = validated_settings()
    except ConfigurationError as exc:
        _fail(exc.problems)
    out.print(f"PixyProxy {__version__} configuration (secrets masked; * not the default):")
    for shown in effective_configuration(validated.settings):
        out.print(f"  {'*' if not shown.default else ' '} {shown.variable}={escape(shown.value)}")
    for warning in validated.warnings:
        err.print(f"warning: {escape(warning)}")

    configure_logging("WARNING")  # what the adapters warn of while reached, in the service's format
    container = Container()
    container.settings.override(validated.settings)
    reached = asyncio.run(reach_all(container, timeout))
    out.print("Dependencies:")
    for item in reached:
        mark = {True: "ok", False: "FAIL", None: "-"}[item.ok]
        out.print(f"  {mark:<4} {item.dependency:<9} {escape(item.detail)}")
    problems = [f"{item.dependency}: {item.detail}" for item in reached if item.ok is False]
    if problems:
        _fail(problems)


def _fail(problems: list[str]) -> NoReturn:
    for problem in problems:
        err.print(f"error: {escape(problem)}")
    raise typer.Exit(1)


async def reach_all(container: Any, timeout: float) -> list[Reached]:
    settings = container.settings()
    probes: list[tuple[str, Callable[[], Awaitable[str | None]]]] = [
        ("database", lambda: _database(container)),
        ("storage", lambda: _storage(container)),
        ("redis", lambda: _redis(container) if settings.redis_url else _absent()),
        ("generator", lambda: _generator(container)),
    ]
    return [await _reach(name, probe, timeout) for name, probe in probes]


async def _absent() -> None:
    return None


async def _reach(name: str, probe: Callable[[], Awaitable[str | None]], timeout: float) -> Reached:
    try:
        async with asyncio.timeout(timeout):
            detail = await probe()
    except TimeoutError:
        return Reached(name, False, f"no answer within {timeout:g} s")
    except Exception as exc:
        return Reached(name, False, _reason(exc))
    if detail is None:
        return Reached(name, None, "not configured")
    return Reached(name, True, detail)


def _reason(exc: BaseException) -> str:
    """One line: the error's own message (the adapters' never hold a secret), with its cause's."""
    message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    cause = exc.__cause__
    if cause is not None and str(cause) and str(cause) not in message:
        message = f"{message} ({type(cause).__name__}: {cause})"
    return " ".join(message.split())


async def _database(container: Any) -> str:
    from pixyproxy.container import schema_known

    name = container.settings().database_scheme
    database = container.database()
    try:
        at, head = await database.revision()
    finally:
        await database.close()
    if at is None:
        return f"{name}, reached; no schema yet (`pixyproxy init` or the first start creates it)"
    if not schema_known(at):
        raise RuntimeError(f"{name} schema revision {at} is newer than this PixyProxy knows ({head})")
    if at != head:
        return f"{name}, schema revision {at}; `pixyproxy init` upgrades it to {head}"
    return f"{name}, schema revision {at} (current)"


async def _storage(container: Any) -> str:
    blobs = container.blobs()
    key = f"{uuid.uuid4()}.png"
    try:
        await blobs.ping()
        await blobs.put(key, PROBE_BYTES, "image/png")
        try:
            stream = await blobs.open(key)
            if stream is None:
                raise RuntimeError("a probe object written was not there to read")
            try:
                read = b"".join([chunk async for chunk in stream.chunks()])
            finally:
                await stream.aclose()
            if read != PROBE_BYTES:
                raise RuntimeError("a probe object read back differs from what was written")
        finally:
            await blobs.delete(key)
    finally:
        await blobs.close()
    return f"{blobs.name}: wrote, read and deleted a probe object"


async def _redis(container: Any) -> str:
    locks = container.idempotency_locks()
    try:
        await locks.ping()
    finally:
        await locks.close()
    return "answered PING"


async def _generator(container: Any) -> str:
    """Every deployment of the model catalogue reached with its cheap call (the generator itself when it
    has no catalogue)."""
    generator = container.generator()
    routes = getattr(generator, "all_routes", None)
    adapters = [route.adapter for route in routes()] if routes is not None else [generator]
    await generator.init()
    try:
        await generator.ping()
        problems = [f"{label}: {state}" for label, state in (await _provider_checks(generator)).items()]
        # Readiness lets a server that cannot be asked pass; a check of the configuration does not.
        problems += [
            f"{adapter.name}: the server could not be asked which models it offers"
            for adapter in adapters
            if getattr(adapter, "models_checked", True) is False
        ]
        if problems:
            raise RuntimeError("; ".join(problems))
    finally:
        await generator.close()
    names = sorted({adapter.name for adapter in adapters})
    return f"{', '.join(names)}, default model {generator.default_model}"


async def _provider_checks(generator: Any) -> dict[str, str]:
    checks = getattr(generator, "provider_checks", None)
    if checks is None:
        return {}
    return {label: state for label, state in (await checks()).items() if state != "ok"}
