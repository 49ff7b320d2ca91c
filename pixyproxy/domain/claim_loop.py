"""The loop of a worker that claims leased work from a store (jobs, webhook deliveries), written once:
claim what fits in the free slots, start each, and when nothing more is due wait until woken (work just
submitted, a slot freed) or until the idle time passes (work submitted by another process)."""

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


class ClaimLoop:
    def __init__(
        self, claim_and_start: Callable[[], Awaitable[bool]], idle_seconds: Callable[[], float], what: str
    ) -> None:
        """`claim_and_start()` claims and starts what fits, True when it filled every slot (more may be
        due); `idle_seconds()` is how long to wait when nothing more is."""
        self._claim_and_start = claim_and_start
        self._idle_seconds = idle_seconds
        self._what = what
        self._wake = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        while True:
            self._wake.clear()
            more = False
            try:
                more = await self._claim_and_start()
            except Exception as exc:  # the store is down: the next pass tries again
                log.warning("could not claim %s (%s); trying again", self._what, exc)
            if more:
                continue
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._idle_seconds()):
                    await self._wake.wait()
