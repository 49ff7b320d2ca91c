"""A deployment's cap on calls at once (its `max_concurrency`, per process).

Unlike a semaphore, a slot is taken without waiting or not at all, so routing can pass a full deployment
over for the next one; and a request may wait on several deployments at once, for the first to free a
slot. A freed slot goes straight to the longest waiting request, so a newcomer never jumps the queue.
"""

import asyncio
import contextlib
from collections import deque


class Slots:
    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError("a deployment's max_concurrency is at least 1")
        self.size = size
        self.taken = 0
        self._waiters: deque[asyncio.Future[Slots]] = deque()

    @property
    def full(self) -> bool:
        return self.taken >= self.size

    def try_take(self) -> bool:
        """Take a slot if one is free, at once; False when the deployment is full."""
        if self.taken >= self.size:
            return False
        self.taken += 1
        return True

    def give_back(self) -> None:
        """Free a slot: handed on (still taken) to the first request still waiting, else freed."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(self)
                return
        self.taken -= 1


async def first_free(choices: list[Slots]) -> Slots:
    """Wait until one of `choices` frees a slot, and hold that slot: the caller gives it back."""
    for slots in choices:
        if slots.try_take():
            return slots
    waiter: asyncio.Future[Slots] = asyncio.get_running_loop().create_future()
    for slots in choices:
        slots._waiters.append(waiter)
    try:
        return await waiter
    except asyncio.CancelledError:
        # Cancelled just after a slot was handed over: nobody will use it, so it goes on.
        if waiter.done() and not waiter.cancelled():
            waiter.result().give_back()
        raise
    finally:
        for slots in choices:
            with contextlib.suppress(ValueError):
                slots._waiters.remove(waiter)
