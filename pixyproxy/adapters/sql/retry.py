"""One retry policy for every table (after oslo.db's wrap_db_retry): a deadlock's victim and a unit of
work that lost its connection before its COMMIT went out are run again, with exponential backoff and
jitter; a timeout never is (a hung server would only multiply the wait), nor a write whose COMMIT was
sent and never answered unless the caller says running it twice is harmless."""

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from pixyproxy.adapters.sql.errors import Kind
from pixyproxy.domain.errors import MetadataUnavailable

log = logging.getLogger(__name__)
T = TypeVar("T")


class Retryable(MetadataUnavailable):
    """A unit of work failed in a way that running it again may cure; outside the policy, or once the
    policy gives up, it is the plain MetadataUnavailable it derives from (a 503)."""

    def __init__(self, kind: Kind, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class RetryPolicy:
    deadlock_attempts: int = 5  # InnoDB picks a victim; the claim's row locks meet INSERTs at times
    lost_connection_attempts: int = 2  # one more try on a fresh connection (a server restart)
    base_seconds: float = 0.01
    max_seconds: float = 0.5

    def attempts_for(self, kind: Kind) -> int:
        return self.deadlock_attempts if kind is Kind.DEADLOCK else self.lost_connection_attempts

    def delay(self, attempt: int) -> float:
        """Full jitter: anywhere up to base * 2^(attempt-1), capped."""
        return random.uniform(0, min(self.max_seconds, self.base_seconds * 2 ** (attempt - 1)))

    async def run(self, work: Callable[[], Awaitable[T]]) -> T:
        attempt = 0
        while True:
            attempt += 1
            try:
                return await work()
            except Retryable as retryable:
                if attempt >= self.attempts_for(retryable.kind):
                    raise
                log.info("%s; running the unit of work again", retryable)
                if retryable.kind is Kind.DEADLOCK:
                    await asyncio.sleep(self.delay(attempt))
