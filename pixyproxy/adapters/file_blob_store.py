"""The embedded default blob store: one file per image in a local folder."""

import asyncio
import os
import re
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta
from pathlib import Path

from pixyproxy.domain.errors import StorageUnavailable
from pixyproxy.domain.ports.blobs import B

CHUNK = 1024 * 1024  # most images are one read
# Keys come from the service (`{uuid}.png`, `.webp` or `.jpg`; variants `{uuid}.w256.webp`,
# `{uuid}.full.avif`), never from a client; refuse anything else.
_GUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
_NAME = _GUID + r"(\.(w\d{1,4}|full))?\.(png|webp|jpg|avif|gif|svg)"
_KEY = re.compile(f"^{_NAME}$")
_TEMP = re.compile(f"^\\.{_NAME}\\.\\d+\\.tmp$")


class FileBlobStream:
    """Positional reads on a raw descriptor: open, fstat, one pread per chunk, close. Buffered open()
    would add its own seeks, stats and reads for nothing, since every read here is already large."""

    def __init__(self, fd: int, offset: int, remaining: int, local_path: str) -> None:
        self.local_path = local_path  # lets an ASGI server that can send a file by its path do so
        self._fd: int | None = fd
        self._offset = offset
        self._remaining = remaining

    async def chunks(self) -> AsyncIterator[bytes]:
        # Reads come from the page cache in microseconds for the sizes served; no thread hop.
        try:
            while self._remaining > 0 and self._fd is not None:
                data = os.pread(self._fd, min(CHUNK, self._remaining), self._offset)
                if not data:
                    break
                self._offset += len(data)
                self._remaining -= len(data)
                yield data
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        self._close()

    def _close(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)

    # A stream dropped unread (a client gone before its body started) must not keep its descriptor,
    # as a file object would not.
    __del__ = _close


DEFAULT_MIN_FREE_BYTES = 64 * 1024 * 1024
_MB = 1024 * 1024


class FileBlobStore:
    """Keeps `min_free_bytes` free on its file system: a write that would go below is refused and the
    store reports not ready, so the disk never fills through the service and the metadata store (on the
    same disk in the embedded default) keeps room to delete rows; space can then be freed through DELETE."""

    name = "file"

    def __init__(self, root: str | Path, min_free_bytes: int = DEFAULT_MIN_FREE_BYTES) -> None:
        self.root = Path(root)
        self.min_free_bytes = min_free_bytes

    def _free_bytes(self) -> int:
        stats = os.statvfs(self.root)
        return stats.f_bavail * stats.f_frsize

    def _low_space(self, needed: int = 0) -> str | None:
        """Why a write of `needed` bytes is refused (too little space would be left), or None."""
        try:
            free = self._free_bytes()
        except OSError as exc:
            return f"the image folder cannot be examined: {exc.strerror}"
        if free - needed >= self.min_free_bytes:
            return None
        return (
            f"storage is full: {free // _MB} MB free on the image folder's disk, and "
            f"{self.min_free_bytes // _MB} MB are kept free (PIXYPROXY_STORAGE_MIN_FREE_MB)"
        )

    def _path(self, key: str) -> Path:
        if not _KEY.match(key):
            raise ValueError(f"not a blob key: {key!r}")
        return self.root / key

    async def init(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageUnavailable(f"cannot create the image folder: {exc.strerror}") from exc

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        await asyncio.to_thread(self._write, self._path(key), data)

    async def put_prepared(self, prepare: Callable[[], B]) -> B:
        return await asyncio.to_thread(self._prepare_and_write, prepare)

    def _prepare_and_write(self, prepare: Callable[[], B]) -> B:
        blob = prepare()
        self._write(self._path(blob.key), blob.data)
        return blob

    def _write(self, path: Path, data: bytes) -> None:
        refused = self._low_space(len(data))
        if refused is not None:
            raise StorageUnavailable(refused)
        temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            with open(temp, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.link(temp, path)  # atomic, and fails rather than overwrite another image
        except FileExistsError as exc:
            raise StorageUnavailable(f"refusing to overwrite existing blob {path.name}") from exc
        except OSError as exc:
            raise StorageUnavailable(f"cannot write the image: {exc.strerror}") from exc
        finally:
            temp.unlink(missing_ok=True)

    async def open(self, key: str, start: int = 0, end: int | None = None) -> FileBlobStream | None:
        path = self._path(key)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StorageUnavailable(f"cannot read the image: {exc.strerror}") from exc
        try:
            size = os.fstat(fd).st_size
        except OSError as exc:
            os.close(fd)
            raise StorageUnavailable(f"cannot read the image: {exc.strerror}") from exc
        last = size - 1 if end is None else min(end, size - 1)
        return FileBlobStream(fd, start, max(0, last - start + 1), str(path))

    async def delete(self, key: str) -> None:
        try:
            self._path(key).unlink(missing_ok=True)
        except OSError as exc:
            raise StorageUnavailable(f"cannot delete the image: {exc.strerror}") from exc

    async def delete_many(self, keys: list[str]) -> None:
        for key in keys:
            await self.delete(key)

    async def list_older_than(self, cutoff: datetime) -> list[str]:
        limit = cutoff.timestamp()
        keys = []
        try:
            with os.scandir(self.root) as entries:
                for entry in entries:
                    if _KEY.match(entry.name) and entry.stat().st_mtime < limit:
                        keys.append(entry.name)
                    elif _TEMP.match(entry.name) and entry.stat().st_mtime < limit:
                        # A write that died before its rename (a crash): no key, no row, just litter.
                        Path(entry.path).unlink(missing_ok=True)
        except FileNotFoundError:
            return []
        return keys

    async def presigned_url(self, key: str, ttl: timedelta) -> str | None:
        return None  # files have no URL of their own: the service's content URL serves them

    async def ping(self) -> None:
        if not (self.root.is_dir() and os.access(self.root, os.W_OK)):
            raise StorageUnavailable(f"the image folder {self.root} is missing or not writable")
        refused = self._low_space()
        if refused is not None:
            raise StorageUnavailable(refused)

    async def close(self) -> None:
        return None
