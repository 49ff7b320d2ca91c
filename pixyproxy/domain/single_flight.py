"""One run of a piece of work per key in this process: whoever asks while it runs waits for its result."""

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

T = TypeVar("T")


class DifferentWorkInFlight(Exception):
    """The key is running with another tag (an Idempotency-Key reused for a different body)."""


class SingleFlight(Generic[T]):
    def __init__(self) -> None:
        self._running: dict[Hashable, tuple[object, asyncio.Future[T]]] = {}

    async def run(self, key: Hashable, produce: Callable[[], Awaitable[T]], tag: object = None) -> T:
        """`produce()` once for concurrent callers of `key`; a caller with another `tag` is refused."""
        while True:
            # Checked and registered with no await in between: of concurrent callers, exactly one leads.
            running = self._running.get(key)
            if running is None:
                break
            running_tag, running_future = running
            if running_tag != tag:
                raise DifferentWorkInFlight()
            try:
                return await asyncio.shield(running_future)
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if running_future.cancelled() and task is not None and not task.cancelling():
                    continue  # the leader was cancelled, not us: take over (the key is free again)
                raise
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._running[key] = (tag, future)
        try:
            result = await produce()
        except asyncio.CancelledError:
            future.cancel()
            raise
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: a lone caller must not log "never retrieved"
            raise
        else:
            future.set_result(result)
            return result
        finally:
            del self._running[key]
