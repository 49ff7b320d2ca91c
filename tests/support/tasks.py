"""Starting a coroutine at a known point, so a test orders concurrent steps without sleeping."""

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def started(make: Callable[[], Awaitable[T]]) -> asyncio.Task[T]:
    """`make()` in a new task, returned once that task has run up to its first wait (the first await
    that really suspends): whatever it does before that, it has done when this returns."""
    running = asyncio.Event()

    async def run() -> T:
        running.set()  # the test resumes only after this task next suspends
        return await make()

    task = asyncio.create_task(run())
    await running.wait()
    return task
