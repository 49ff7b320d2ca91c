from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta
from typing import Protocol, TypeVar


class BlobStream(Protocol):
    """An open blob (or a byte range of it), read in chunks so memory does not grow with its size."""

    def chunks(self) -> AsyncIterator[bytes]: ...

    async def aclose(self) -> None: ...


class NewBlob(Protocol):
    """What put_prepared stores."""

    @property
    def key(self) -> str: ...
    @property
    def data(self) -> bytes: ...
    @property
    def content_type(self) -> str: ...


B = TypeVar("B", bound=NewBlob)


class BlobStore(Protocol):
    """Image bytes, keyed by `{guid}.png` (or .webp, .jpg) and its variants by `{guid}.w256.webp` ...

    Every method raises StorageUnavailable when the store cannot be reached.
    """

    @property
    def name(self) -> str:
        """e.g. "file", "s3"; logged at start (never a secret). Read-only: a decorator may pass it on."""
        ...

    async def init(self) -> None:
        """Create what the store needs (folder, bucket); idempotent."""
        ...

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        """Store the bytes atomically: a reader sees all of them or none. Never overwrites another image."""
        ...

    async def put_prepared(self, prepare: Callable[[], B]) -> B:
        """put() what `prepare()` returns, and return it: `prepare` (CPU work, a check and a hash) runs off
        the event loop, in the same hand-off to a thread as the write where the store writes from one."""
        ...

    async def open(self, key: str, start: int = 0, end: int | None = None) -> BlobStream | None:
        """Open bytes start..end (inclusive; None is the last byte); None when no such blob."""
        ...

    async def delete(self, key: str) -> None:
        """Remove the blob; no error when it is already gone."""
        ...

    async def delete_many(self, keys: list[str]) -> None:
        """Remove these blobs (an image and its variants) in as few calls as the store allows; keys
        already gone are no error."""
        ...

    async def list_older_than(self, cutoff: datetime) -> list[str]:
        """Keys of blobs last written before `cutoff` (garbage collection candidates)."""
        ...

    async def presigned_url(self, key: str, ttl: timedelta) -> str | None:
        """A time-limited URL a client can GET directly, or None if this store has no such thing."""
        ...

    async def ping(self) -> None: ...

    async def close(self) -> None: ...
