from typing import Protocol


class UsageCounter(Protocol):
    """Named counters that expire by themselves (budgets); in memory per process, or shared (Redis).

    Every method raises DependencyUnavailable when the store cannot be reached."""

    async def incr(self, key: str, amount: int, expiry_seconds: int) -> int:
        """Add `amount` (may be negative) to the counter and answer its new value; a new counter
        starts at 0 and expires `expiry_seconds` after its first increment."""
        ...

    async def get(self, key: str) -> int:
        """The counter's value; 0 for one never counted or expired."""
        ...


class RateLimiter(Protocol):
    """A per-client limit on how often something may be done."""

    async def take(self, client: str) -> float:
        """0 when the client may go ahead (the attempt is counted), else seconds until it may."""
        ...


class IdempotencyLocks(Protocol):
    """A lock per Idempotency-Key shared by every replica, so one provider call answers a key."""

    async def acquire(self, key: str, ttl_seconds: float) -> str | None:
        """A token when this caller now holds the key's lock, None when another holds it."""
        ...

    async def release(self, key: str, token: str) -> None:
        """Let go of the lock if `token` still holds it (an expired lock another took is left alone)."""
        ...

    async def wait_released(self, key: str, timeout_seconds: float) -> None:
        """Return once no one holds the key's lock (or after the timeout)."""
        ...

    async def ping(self) -> None:
        """Raise DependencyUnavailable when the lock store cannot be reached (readiness)."""
        ...
