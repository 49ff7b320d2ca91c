"""Idempotency-Keys, one design for images and jobs: a key is scoped to its caller (tenancy.py), held
with a fingerprint of the request for a while (the TTL), and answered once:

- a replay within the TTL gets what the first request made; another body under the key is a conflict;
- a duplicate in flight in this process waits for the first (single flight), and with shared locks
  (Redis) so does one in another replica: one provider call per key;
- a record stored under the key by someone else between the look-up and the write (the store raises
  IdempotencyConflict) is answered as a replay;
- past the TTL the key counts as unused: it is released and the request runs again.
"""

import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Generic, Protocol, TypeVar, cast

from pydantic import BaseModel

from pixyproxy.domain.clock import utc_now
from pixyproxy.domain.errors import IdempotencyConflict
from pixyproxy.domain.models import Caller
from pixyproxy.domain.ports.counters import IdempotencyLocks
from pixyproxy.domain.single_flight import DifferentWorkInFlight, SingleFlight
from pixyproxy.domain.tenancy import scoped_idempotency_key

DEFAULT_IDEMPOTENCY_TTL_SECONDS = 24 * 3600
# A replica holding an Idempotency-Key's lock that dies lets go of it after this long.
DEFAULT_IDEMPOTENCY_LOCK_SECONDS = 600

T = TypeVar("T")

# Options added after keys were first stored: left out of a fingerprint while unset, so a key stored
# before them still matches a replay of the same body.
_LATER_OPTIONS = frozenset(
    {"background", "output_format", "output_compression", "moderation", "n", "mask_guid", "reference_guids"}
    | {"complexity", "frame_count", "frame_duration_ms", "svg", "negative_prompt"}
)


def fingerprint(request: BaseModel, scope: str = "") -> str:
    """A hash of what was asked (and of `scope`: the image an edit changes, `job`), to tell a replay of a
    key from a different request."""
    unset = {name for name in _LATER_OPTIONS if getattr(request, name, None) is None}
    text = request.model_dump_json(exclude=unset)
    if scope:
        text = f"{scope}:{text}"
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class Remembered(Generic[T]):
    """What a store holds under a key: the record, the fingerprint it was made for, and when."""

    value: T
    request_hash: str
    created_at: datetime


class KeyedRecords(Protocol[T]):
    """The records of one kind (images, jobs) as the idempotency policy reads them."""

    kind: str

    async def remembered(self, key: str) -> Remembered[T] | None: ...

    async def release(self, key: str, older_than: datetime) -> None:
        """Free `key` if the record holding it was made before `older_than`."""
        ...


@dataclass(frozen=True)
class Key:
    """An Idempotency-Key as stored (scoped to its caller) and the fingerprint of its request."""

    stored: str
    fingerprint: str


class Idempotency:
    def __init__(
        self,
        ttl_seconds: float = DEFAULT_IDEMPOTENCY_TTL_SECONDS,
        *,
        locks: IdempotencyLocks | None = None,
        lock_seconds: float = DEFAULT_IDEMPOTENCY_LOCK_SECONDS,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.ttl = timedelta(seconds=ttl_seconds)
        # Shared by replicas (Redis) when configured: one provider call per key across them.
        self.locks = locks
        self.lock_seconds = lock_seconds
        self._clock = clock
        self._flights: SingleFlight[object] = SingleFlight()

    @staticmethod
    def key(caller: Caller | None, key: str | None, request_hash: str) -> Key | None:
        """The key as stored (scoped to `caller`) with its request's fingerprint; None without a key."""
        if key is None:
            return None
        return Key(scoped_idempotency_key(caller, key), request_hash)

    async def once(self, records: KeyedRecords[T], key: Key, produce: Callable[[], Awaitable[T]]) -> T:
        """`produce()` at most once for `key`; every other request under it gets its record."""

        async def lead() -> T:
            found = await self.stored(records, key)
            if found is not None:
                return found
            if self.locks is None:
                return await self._produce(records, key, produce)
            return await self._produce_locked(records, key, produce)

        try:
            result = await self._flights.run((records.kind, key.stored), lead, key.fingerprint)
        except DifferentWorkInFlight:
            raise IdempotencyConflict() from None
        return cast(T, result)  # the flight under (kind, key) made a T

    async def stored(self, records: KeyedRecords[T], key: Key) -> T | None:
        """The record under the key (a replay), None when the key is unused or has expired."""
        existing = await records.remembered(key.stored)
        if existing is None:
            return None
        cutoff = self._clock() - self.ttl
        if existing.created_at < cutoff:
            # Expired: the key counts as unused. Let go of it (the store checks the age again in the
            # same statement, so a fresh record another process just stored keeps its key).
            await records.release(key.stored, cutoff)
            return None
        if existing.request_hash != key.fingerprint:
            raise IdempotencyConflict()
        return existing.value

    async def _produce(self, records: KeyedRecords[T], key: Key, produce: Callable[[], Awaitable[T]]) -> T:
        try:
            return await produce()
        except IdempotencyConflict:
            # Another process stored a record under this key first: answer with it, as a replay would.
            found = await self.stored(records, key)
            if found is None:
                raise
            return found

    async def _produce_locked(
        self, records: KeyedRecords[T], key: Key, produce: Callable[[], Awaitable[T]]
    ) -> T:
        """Across replicas: the one holding the key's shared lock produces; another waits for the lock
        to go, then replays what was stored (or, if the holder failed, takes its turn)."""
        assert self.locks is not None
        prefix = "idempotency:" if records.kind == "image" else f"idempotency:{records.kind}:"
        lock = prefix + hashlib.sha256(key.stored.encode()).hexdigest()
        while True:
            token = await self.locks.acquire(lock, self.lock_seconds)
            if token is not None:
                try:
                    # Looked up again under the lock: the last holder may have stored it just now.
                    found = await self.stored(records, key)
                    return found if found is not None else await self._produce(records, key, produce)
                finally:
                    await self.locks.release(lock, token)
            await self.locks.wait_released(lock, self.lock_seconds)
            found = await self.stored(records, key)
            if found is not None:
                return found
