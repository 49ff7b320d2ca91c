"""For the /v1 face's tests: an in-process app served over real HTTP (the OpenAI SDK speaks HTTP, not
ASGI) and a generator double for n images of which one fails."""

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import uvicorn

from pixyproxy.domain.models import GeneratedImage, GenerationRequest, PartialImage
from tests.support.fakes import ScriptedGenerator


@contextlib.contextmanager
def served(app) -> Iterator[str]:
    """Serve `app` (lifespan included) on a free 127.0.0.1 port in a thread; yields its base URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=1)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=asyncio.run, args=(server.serve(sockets=[sock]),), daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:  # polled: the server runs on its own thread and loop, with no event to await
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the in-process server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


class OneOfSeveralFails(ScriptedGenerator):
    """Of `count` concurrent generations, the one numbered `failing` raises `fail_with` once all have
    begun; the others wait until they are cancelled, and count it."""

    def __init__(self, count: int, failing: int, fail_with: Exception) -> None:
        super().__init__()
        self.count, self.failing, self.error = count, failing, fail_with
        self.cancelled = 0
        self._all_began = asyncio.Event()

    async def generate(self, request: GenerationRequest, **options: Any) -> GeneratedImage:
        number = len(self.calls)
        self.calls.append(request)
        if len(self.calls) == self.count:
            self._all_began.set()
        await self._all_began.wait()
        if number == self.failing:
            raise self.error
        try:
            await asyncio.Event().wait()  # never set: only cancellation ends this
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        raise AssertionError("unreachable")


class PartialThenFails(ScriptedGenerator):
    """Streams one partial image, then raises `fail_with`; with `hold` set it waits after the partial
    instead (until cancelled: `cancelled` is set, from the server's thread)."""

    def __init__(self, fail_with: Exception | None = None, hold: bool = False) -> None:
        super().__init__()
        self.error, self.hold_after_partial = fail_with, hold
        self.cancelled = threading.Event()

    async def generate(self, request: GenerationRequest, **options: Any) -> GeneratedImage:
        self.calls.append(request)
        await options["on_partial"](PartialImage(0, self.image, "png"))
        if self.hold_after_partial:
            try:
                await asyncio.Event().wait()  # never set: only cancellation ends this
            except asyncio.CancelledError:
                self.cancelled.set()
                raise
        raise self.error or AssertionError("no failure given")
