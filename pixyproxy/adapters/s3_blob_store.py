"""The production blob store: S3-compatible object storage (AWS S3, MinIO) through boto3.

Configured by `PIXYPROXY_STORAGE_URL=s3://bucket/optional-prefix`. Credentials, region and endpoint come only
from boto3's own sources (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION, AWS_ENDPOINT_URL_S3,
~/.aws/config, instance roles ...); nothing here reads or logs a secret.

boto3 is blocking: every call, and every chunk read of a download, runs in a worker thread so the event loop
never waits on S3. A download is read in CHUNK-sized pieces, so memory does not grow with the image's size.
"""

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit
from uuid import uuid4

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from pixyproxy.domain.errors import StorageUnavailable
from pixyproxy.domain.ports.blobs import B

log = logging.getLogger(__name__)

CHUNK = 256 * 1024
# Connection pool size: above the number of downloads one process streams at once (each holds a connection
# until its body is read), so connections are reused rather than opened and discarded.
MAX_POOL_CONNECTIONS = 64

_MISSING_KEY = frozenset({"NoSuchKey", "404", "NotFound"})
_MISSING_BUCKET = frozenset({"NoSuchBucket", "404", "NotFound"})
_EXISTS = frozenset({"PreconditionFailed", "412", "ConditionalRequestConflict", "409"})
_NOT_SUPPORTED = frozenset({"NotImplemented", "501"})


def parse_s3_url(url: str) -> tuple[str, str]:
    """s3://bucket/optional/prefix -> (bucket, "optional/prefix")."""
    parts = urlsplit(url)
    if parts.scheme.lower() != "s3" or not parts.netloc:
        raise ValueError(f"not an s3://bucket/optional-prefix URL: {url!r}")
    return parts.netloc, parts.path.strip("/")


def _error_code(exc: ClientError) -> str:
    error = exc.response.get("Error", {})
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return str(error.get("Code") or status or "")


class S3BlobStream:
    """One GetObject body, read CHUNK bytes at a time in a worker thread."""

    def __init__(self, body: Any) -> None:
        self._body = body
        self._closed = False

    async def chunks(self) -> AsyncIterator[bytes]:
        try:
            while True:
                try:
                    data = await asyncio.to_thread(self._body.read, CHUNK)
                except (BotoCoreError, OSError) as exc:  # read timeout, connection reset, short body
                    raise StorageUnavailable(
                        f"reading the image from S3 failed ({type(exc).__name__})"
                    ) from exc
                if not data:
                    break
                yield data
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            self._body.close()  # drops the connection if the body was not read to the end


class _EmptyStream:
    async def chunks(self) -> AsyncIterator[bytes]:
        return
        yield b""  # pragma: no cover (makes this an async generator)

    async def aclose(self) -> None:
        return None


class S3BlobStore:
    name = "s3"

    def __init__(
        self,
        url: str,
        public_endpoint_url: str | None = None,
        *,
        connect_timeout: float,
        read_timeout: float,
        max_attempts: int,
    ) -> None:
        """The timeouts come from settings (PIXYPROXY_S3_*), where their defaults are written."""
        self.bucket, self.prefix = parse_s3_url(url)
        # A dead endpoint costs at most max_attempts x connect_timeout (+ a retry backoff under 1 s); a
        # server that accepts but stalls costs max_attempts x read_timeout.
        config = Config(
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            retries={"mode": "standard", "total_max_attempts": max_attempts},  # tries, not retries
            max_pool_connections=MAX_POOL_CONNECTIONS,
            signature_version="s3v4",
            user_agent_extra="pixyproxy",
        )
        session = boto3.session.Session()  # reads the AWS_* variables and config files; no network
        self._client = session.client("s3", config=config)
        self._public_client = None
        if public_endpoint_url:
            # Presigning is local computation, but SigV4 signs the Host: a URL signed for the internal name
            # fails when a client fetches it through the public one. Sign with the endpoint clients reach.
            self._public_client = session.client(
                "s3",
                endpoint_url=public_endpoint_url,
                region_name=self._client.meta.region_name,
                config=config.merge(Config(s3={"addressing_style": "path"})),
            )
        # Conditional writes (PutObject with If-None-Match: *) are how `put` refuses to overwrite: AWS S3 has
        # them since 2024, as do current MinIO and moto. init() probes the server; one that rejects or ignores
        # the header gets a HEAD-then-PUT check instead (racy in theory, but keys are fresh uuid4s).
        self.conditional_writes = True

    # -- keys -----------------------------------------------------------------------------------

    def _object_key(self, key: str) -> str:
        if not key or "/" in key or key.startswith("."):
            raise ValueError(f"not a blob key: {key!r}")
        return f"{self.prefix}/{key}" if self.prefix else key

    @property
    def _list_prefix(self) -> str:
        return f"{self.prefix}/" if self.prefix else ""

    def object_key(self, key: str) -> str:
        """Where `key` lives in the bucket (for operators and tests)."""
        return self._object_key(key)

    # -- calls ----------------------------------------------------------------------------------

    async def _call(
        self, action: str, method: Callable[..., Any], expect: frozenset[str] = frozenset(), /, **kw: Any
    ) -> Any:
        """Run one boto3 call in a worker thread; map its failures to StorageUnavailable.

        ClientErrors whose code is in `expect` are re-raised for the caller to handle.
        """
        try:
            return await asyncio.to_thread(method, **kw)
        except ClientError as exc:
            code = _error_code(exc)
            if code in expect:
                raise
            log.warning("S3 refused to %s: %s", action, exc)
            raise StorageUnavailable(f"S3 refused to {action} ({code})") from exc
        except NoCredentialsError as exc:
            raise StorageUnavailable("no S3 credentials are configured (AWS_ACCESS_KEY_ID ...)") from exc
        except BotoCoreError as exc:
            log.warning("S3 unreachable while trying to %s: %s", action, exc)
            raise StorageUnavailable(f"S3 is not reachable ({type(exc).__name__})") from exc

    # -- the port -------------------------------------------------------------------------------

    async def init(self) -> None:
        try:
            await self._call(
                "check the bucket", self._client.head_bucket, _MISSING_BUCKET, Bucket=self.bucket
            )
        except ClientError:
            await self._create_bucket()
        await self._probe_conditional_writes()
        log.info(
            "S3 storage: bucket %s, prefix %r, conditional writes %s",
            self.bucket,
            self.prefix,
            "yes" if self.conditional_writes else "no (HEAD check)",
        )

    async def _create_bucket(self) -> None:
        region = self._client.meta.region_name
        kwargs: dict[str, Any] = {"Bucket": self.bucket}
        if region and region not in ("us-east-1", "aws-global"):
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
        try:
            await self._call(
                "create the bucket",
                self._client.create_bucket,
                frozenset({"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}),
                **kwargs,
            )
            log.info("created S3 bucket %s", self.bucket)
        except ClientError as exc:
            if _error_code(exc) == "BucketAlreadyExists":  # someone else's bucket: not usable
                raise StorageUnavailable(f"the S3 bucket {self.bucket} belongs to another account") from exc
            # BucketAlreadyOwnedByYou: another instance created it a moment ago

    async def _probe_conditional_writes(self) -> None:
        """Write a probe object twice with If-None-Match: *; the second write must be refused."""
        probe = self._object_key(f"pixyproxy-write-probe-{uuid4().hex}")
        args = {"Bucket": self.bucket, "Key": probe, "IfNoneMatch": "*"}
        put = self._client.put_object
        try:
            await self._call("write", put, _NOT_SUPPORTED, Body=b"1", **args)
        except ClientError:
            self.conditional_writes = False  # the server rejects the header outright
            return
        try:
            await self._call("write", put, _EXISTS | _NOT_SUPPORTED, Body=b"2", **args)
            self.conditional_writes = False  # the header was ignored: the probe was overwritten
        except ClientError as exc:
            self.conditional_writes = _error_code(exc) in _EXISTS
        finally:
            await self._call(
                "delete the write probe", self._client.delete_object, Bucket=self.bucket, Key=probe
            )

    async def put_prepared(self, prepare: Callable[[], B]) -> B:
        blob = await asyncio.to_thread(prepare)
        await self.put(blob.key, blob.data, blob.content_type)
        return blob

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        object_key = self._object_key(key)
        args = {"Bucket": self.bucket, "Key": object_key, "Body": data, "ContentType": content_type}
        # A single PutObject is atomic: readers see the whole object or none of it.
        if self.conditional_writes:
            try:
                await self._call(
                    "store the image",
                    self._client.put_object,
                    _EXISTS | _NOT_SUPPORTED,
                    IfNoneMatch="*",
                    **args,
                )
                return
            except ClientError as exc:
                if _error_code(exc) in _EXISTS:
                    raise StorageUnavailable(f"refusing to overwrite existing blob {key}") from exc
                self.conditional_writes = False  # this server does not do conditional writes
        if await self._exists(object_key):
            raise StorageUnavailable(f"refusing to overwrite existing blob {key}")
        await self._call("store the image", self._client.put_object, **args)

    async def _exists(self, object_key: str) -> bool:
        try:
            await self._call(
                "check the image", self._client.head_object, _MISSING_KEY, Bucket=self.bucket, Key=object_key
            )
            return True
        except ClientError:
            return False

    async def open(
        self, key: str, start: int = 0, end: int | None = None
    ) -> S3BlobStream | _EmptyStream | None:
        args = {"Bucket": self.bucket, "Key": self._object_key(key)}
        if start or end is not None:
            args["Range"] = f"bytes={start}-{'' if end is None else end}"
        try:
            response = await self._call(
                "read the image",
                self._client.get_object,
                frozenset({"NoSuchKey", "InvalidRange", "416"}),
                **args,
            )
        except ClientError as exc:
            if _error_code(exc) == "NoSuchKey":
                return None
            return _EmptyStream()  # the range starts past the end (or the object is empty)
        return S3BlobStream(response["Body"])

    async def delete(self, key: str) -> None:
        try:
            await self._call(
                "delete the image",
                self._client.delete_object,
                frozenset({"NoSuchBucket"}),
                Bucket=self.bucket,
                Key=self._object_key(key),
            )
        except ClientError:
            return  # no bucket, so no blob: already gone

    async def delete_many(self, keys: list[str]) -> None:
        # One DeleteObjects call per 1000 keys; keys that were never written are no error to S3.
        objects = [{"Key": self._object_key(key)} for key in keys]
        for start in range(0, len(objects), 1000):
            try:
                answer = await self._call(
                    "delete the images",
                    self._client.delete_objects,
                    frozenset({"NoSuchBucket"}),
                    Bucket=self.bucket,
                    Delete={"Objects": objects[start : start + 1000], "Quiet": True},
                )
            except ClientError:
                return  # no bucket, so no blobs: already gone
            failed = [e for e in answer.get("Errors", []) if e.get("Code") != "NoSuchKey"]
            if failed:
                first = failed[0]
                log.warning("S3 kept %d of the objects it was asked to delete: %s", len(failed), first)
                raise StorageUnavailable(f"S3 refused to delete {first.get('Key')} ({first.get('Code')})")

    async def list_older_than(self, cutoff: datetime) -> list[str]:
        if cutoff.tzinfo is None:
            cutoff = cutoff.replace(tzinfo=UTC)
        return await self._call("list the images", self._list_older_than, cutoff=cutoff)

    def _list_older_than(self, cutoff: datetime) -> list[str]:
        keys = []
        prefix = self._list_prefix
        pages = self._client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=prefix, Delimiter="/"
        )
        for page in pages:
            for item in page.get("Contents", []):
                name = item["Key"][len(prefix) :]
                if (
                    name.endswith((".png", ".webp", ".jpg", ".avif", ".gif", ".svg"))
                    and item["LastModified"] < cutoff
                ):
                    keys.append(name)
        return keys

    async def presigned_url(self, key: str, ttl: timedelta) -> str:
        client = self._public_client or self._client
        return await self._call(
            "sign a download URL",
            client.generate_presigned_url,
            ClientMethod="get_object",
            Params={"Bucket": self.bucket, "Key": self._object_key(key)},
            ExpiresIn=max(1, int(ttl.total_seconds())),
        )

    async def ping(self) -> None:
        try:
            await self._call(
                "check the bucket", self._client.head_bucket, _MISSING_BUCKET, Bucket=self.bucket
            )
        except ClientError as exc:
            raise StorageUnavailable(f"the S3 bucket {self.bucket} does not exist") from exc

    async def close(self) -> None:
        for client in (self._client, self._public_client):
            if client is not None:
                client.close()
