"""n images at once, the one way: each made concurrently, and the first failure cancels the others
(nothing more is paid for). Jobs keep what was made before a failure; /v1 stores all or none."""

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar, cast

T = TypeVar("T")
P = TypeVar("P")


class Incomplete(Exception, Generic[T]):
    """The n stopped part way: the ones made, and (as the cause) why."""

    def __init__(self, made: list[T]) -> None:
        super().__init__("the images stopped part way")
        self.made = made


async def make_each(n: int, make: Callable[[int], Awaitable[T]]) -> list[T]:
    """[make(0), ..., make(n - 1)], run at once; Incomplete (from the first failure) if one fails or
    this is cancelled, with what the others finished before they were stopped."""
    tasks = [asyncio.ensure_future(make(index)) for index in range(n)]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException as exc:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        made = [t.result() for t in tasks if not t.cancelled() and t.exception() is None]
        raise Incomplete(made) from exc


async def all_or_none(n: int, make: Callable[[int], Awaitable[T]]) -> list[T]:
    """make_each, where a failure is the first one's own exception (what was made is dropped)."""
    if n == 1:
        return [await make(0)]
    try:
        return await make_each(n, make)
    except Incomplete as incomplete:
        cause = incomplete.__cause__
        assert cause is not None
        raise cause from None


async def stored_all_or_none(
    n: int, make: Callable[[int], Awaitable[P]], store: Callable[[P], Awaitable[T]]
) -> list[T]:
    """n made at once, then stored only once every one is made: if one fails to be made, nothing is
    stored. If one fails to be stored, the others' stores end before that failure is raised (their
    images, paid for, are kept), so no store is still running once the client has its answer."""
    made = await all_or_none(n, make)
    if n == 1:
        return [await store(made[0])]
    stored = await asyncio.gather(*(store(paid) for paid in made), return_exceptions=True)
    for result in stored:
        if isinstance(result, BaseException):
            raise result
    return cast(list[T], stored)
