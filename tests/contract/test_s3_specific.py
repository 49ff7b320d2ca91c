"""What the S3 blob store promises beyond the shared BlobStore contract (run against MinIO or moto)."""

import asyncio
import os
import socket
import time
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit
from uuid import uuid4

import httpx
import pytest

from pixyproxy.adapters.s3_blob_store import CHUNK, S3BlobStore, parse_s3_url
from pixyproxy.container import Container
from pixyproxy.domain.errors import StorageUnavailable
from tests.e2e.server import free_port
from tests.support.s3 import TcpRelay, empty_and_remove_bucket, s3_store
from tests.support.silent_server import silent_server

pytestmark = pytest.mark.s3


def new_key() -> str:
    return f"{uuid4()}.png"


async def read_all(stream) -> bytes:
    return b"".join([chunk async for chunk in stream.chunks()])


def test_storage_url_names_bucket_and_prefix():
    assert parse_s3_url("s3://images") == ("images", "")
    assert parse_s3_url("s3://images/") == ("images", "")
    assert parse_s3_url("s3://images/prod/pngs/") == ("images", "prod/pngs")
    for bad in ("s3://", "s3:///prefix", "file:images", "images"):
        with pytest.raises(ValueError):
            parse_s3_url(bad)


def test_container_picks_s3_for_an_s3_url(s3_env, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PIXYPROXY_STORAGE_URL", "s3://some-bucket/some/prefix")
    monkeypatch.setenv("PIXYPROXY_S3_PUBLIC_ENDPOINT_URL", "https://images.example.com")
    store = Container().blobs()
    assert isinstance(store, S3BlobStore)
    assert (store.bucket, store.prefix) == ("some-bucket", "some/prefix")
    assert store.object_key("x.png") == "some/prefix/x.png"


async def test_init_creates_a_missing_bucket(s3_env, s3_bucket):
    client = s3_env.client()
    with pytest.raises(client.exceptions.ClientError):
        client.head_bucket(Bucket=s3_bucket)
    store = s3_store(f"s3://{s3_bucket}")
    await store.init()
    client.head_bucket(Bucket=s3_bucket)  # raises if missing
    assert client.list_objects_v2(Bucket=s3_bucket).get("KeyCount") == 0  # the write probe is gone
    await store.close()


async def test_init_uses_an_existing_bucket(s3_env, s3_bucket):
    client = s3_env.client()
    client.create_bucket(Bucket=s3_bucket)
    client.put_object(Bucket=s3_bucket, Key="someone-elses.txt", Body=b"keep")
    store = s3_store(f"s3://{s3_bucket}/images")
    await store.init()
    assert client.get_object(Bucket=s3_bucket, Key="someone-elses.txt")["Body"].read() == b"keep"
    await store.close()


async def test_objects_are_keyed_under_the_prefix_with_their_content_type(s3_env, s3_blob_store, s3_bucket):
    key = new_key()
    await s3_blob_store.put(key, b"\x89PNG fake", "image/png")
    head = s3_env.client().head_object(Bucket=s3_bucket, Key=f"images/{key}")
    assert head["ContentType"] == "image/png"
    assert head["ContentLength"] == len(b"\x89PNG fake")


async def test_a_bucket_without_prefix_keys_at_the_top(s3_env, s3_bucket):
    store = s3_store(f"s3://{s3_bucket}")
    await store.init()
    key = new_key()
    await store.put(key, b"top", "image/png")
    assert s3_env.client().get_object(Bucket=s3_bucket, Key=key)["Body"].read() == b"top"
    assert key in await store.list_older_than(datetime.now(UTC) + timedelta(minutes=1))
    await store.close()


async def test_this_server_does_conditional_writes(s3_blob_store):
    # MinIO (recent) and moto both honour If-None-Match: *, so the store must have detected it.
    assert s3_blob_store.conditional_writes is True


async def test_a_server_that_ignores_conditional_writes_gets_the_head_check(s3_env, s3_bucket, monkeypatch):
    if s3_env.verifies_signatures:
        pytest.skip(
            "the header is signed: dropping it in transit only works where signatures are not checked"
        )
    # Drop If-None-Match from every request on the way, as a server without conditional writes ignores it.
    relay = TcpRelay(*s3_env.host_port, rewrite=lambda data: data.replace(b"If-None-Match: *\r\n", b""))
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", relay.url)
    store = s3_store(f"s3://{s3_bucket}/images")
    try:
        await store.init()
        assert store.conditional_writes is False  # the probe saw its object overwritten
        assert s3_env.client().list_objects_v2(Bucket=s3_bucket).get("KeyCount") == 0  # probe removed
        key = new_key()
        await store.put(key, b"first", "image/png")
        with pytest.raises(StorageUnavailable, match="overwrite"):
            await store.put(key, b"second", "image/png")
        assert await read_all(await store.open(key)) == b"first"
    finally:
        await store.close()
        relay.stop()


async def test_the_head_check_fallback_also_refuses_to_overwrite(s3_blob_store):
    s3_blob_store.conditional_writes = False  # as on a server without conditional writes
    key = new_key()
    await s3_blob_store.put(key, b"first", "image/png")
    with pytest.raises(StorageUnavailable, match="overwrite"):
        await s3_blob_store.put(key, b"second", "image/png")
    assert await read_all(await s3_blob_store.open(key)) == b"first"


async def test_keys_must_be_plain_names(s3_blob_store):
    for bad in ("", "../x.png", "a/b.png", ".hidden.png"):
        with pytest.raises(ValueError):
            await s3_blob_store.put(bad, b"x", "image/png")


async def test_content_streams_in_bounded_chunks(s3_blob_store):
    key, data = new_key(), os.urandom(3 * CHUNK + 1000)
    await s3_blob_store.put(key, data, "image/png")
    chunks = [chunk async for chunk in (await s3_blob_store.open(key)).chunks()]
    assert len(chunks) >= 4
    assert max(len(c) for c in chunks) <= CHUNK
    assert b"".join(chunks) == data


async def test_a_range_past_the_end_is_empty(s3_blob_store):
    key = new_key()
    await s3_blob_store.put(key, b"0123456789", "image/png")
    assert await read_all(await s3_blob_store.open(key, 3, 5)) == b"345"
    assert await read_all(await s3_blob_store.open(key, 10)) == b""


async def test_list_older_than_sees_only_this_prefixs_images(s3_env, s3_blob_store, s3_bucket):
    key = new_key()
    await s3_blob_store.put(key, b"mine", "image/png")
    client = s3_env.client()
    for foreign in ("other/" + new_key(), "images/nested/" + new_key(), "images/readme.txt", new_key()):
        client.put_object(Bucket=s3_bucket, Key=foreign, Body=b"not mine")
    assert await s3_blob_store.list_older_than(datetime.now(UTC) + timedelta(minutes=1)) == [key]


async def test_presigned_url_serves_the_bytes_from_the_internal_endpoint(s3_env, s3_blob_store):
    key, data = new_key(), os.urandom(50_000)
    await s3_blob_store.put(key, data, "image/png")
    url = await s3_blob_store.presigned_url(key, timedelta(minutes=15))
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}" == s3_env.url
    assert parts.path.endswith(f"/images/{key}")
    query = parse_qs(parts.query)
    assert query["X-Amz-Expires"] == ["900"] and "X-Amz-Signature" in query
    response = httpx.get(url)
    assert response.status_code == 200
    assert response.content == data
    assert response.headers["content-type"] == "image/png"


async def test_presigned_url_is_signed_for_the_public_endpoint(s3_env, s3_bucket):
    # Two host names for the same server (localhost and 127.0.0.1): the signature covers the host.
    public = s3_env.alias_url()
    store = s3_store(f"s3://{s3_bucket}/images", public_endpoint_url=public)
    await store.init()
    key, data = new_key(), os.urandom(20_000)
    await store.put(key, data, "image/png")
    url = await store.presigned_url(key, timedelta(seconds=60))
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}" == public
    assert parts.path == f"/{s3_bucket}/images/{key}"
    assert httpx.get(url).content == data
    if s3_env.verifies_signatures:  # moto accepts any signature; MinIO checks it, host included
        wrong_host = url.replace(public, s3_env.url, 1)
        assert httpx.get(wrong_host).status_code == 403
    await store.close()


async def test_missing_credentials_are_storage_unavailable(s3_env, s3_bucket, monkeypatch):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    store = s3_store(f"s3://{s3_bucket}/images")
    with pytest.raises(StorageUnavailable, match="credentials"):
        await store.init()
    await store.close()


async def test_a_deleted_bucket_fails_ping(s3_env, s3_bucket):
    store = s3_store(f"s3://{s3_bucket}")
    await store.init()
    await store.ping()
    empty_and_remove_bucket(s3_env, s3_bucket)
    with pytest.raises(StorageUnavailable, match="does not exist"):
        await store.ping()
    await store.delete(new_key())  # no bucket, no blob: already gone
    await store.close()


async def test_unreachable_s3_is_storage_unavailable_quickly(s3_env, monkeypatch):
    port = free_port()  # nothing listens on it
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", f"http://127.0.0.1:{port}")
    store = s3_store("s3://nowhere/images")  # the default timeouts and retries
    started = time.monotonic()
    for call in (store.init(), store.ping(), store.put(new_key(), b"x", "image/png"), store.open(new_key())):
        with pytest.raises(StorageUnavailable, match="not reachable"):
            await call
    # Generous bound (a shared machine): the point is "seconds", not the pytest timeout.
    assert time.monotonic() - started < 30
    await store.close()


async def test_a_blackholed_endpoint_fails_within_seconds_by_default(s3_env, monkeypatch):
    # A listener whose accept queue is full: the kernel drops new SYNs, so connecting hangs, as it does
    # toward a host that is down. Without a connect timeout boto3 would wait 60 s per attempt.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    queued = socket.create_connection(("127.0.0.1", port), timeout=2)  # fills the queue
    try:
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", f"http://127.0.0.1:{port}")
        store = s3_store("s3://blackhole/images")  # the default timeouts and retries
        started = time.monotonic()
        with pytest.raises(StorageUnavailable, match="not reachable"):
            await store.put(new_key(), b"x", "image/png")
        # Defaults: 2 attempts x 2 s connect timeout + backoff, about 5 s; generous bound for a busy machine.
        assert time.monotonic() - started < 15
        await store.close()
    finally:
        queued.close()
        listener.close()


async def test_a_server_that_never_answers_times_out(s3_env, monkeypatch):
    with silent_server() as hung:
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", f"http://127.0.0.1:{hung.port}")
        store = s3_store("s3://silent/images", read_timeout=0.5, max_attempts=2)
        started = time.monotonic()
        with pytest.raises(StorageUnavailable, match="not reachable"):
            await store.ping()
        assert time.monotonic() - started < 20
        assert len(hung.accepted) == 2  # bounded retries: the first try and one retry
        await store.close()


async def test_a_download_cut_midway_is_storage_unavailable(s3_env, s3_bucket, monkeypatch):
    store = s3_store(f"s3://{s3_bucket}/images")
    await store.init()
    key = new_key()
    await store.put(key, os.urandom(24 * 1024 * 1024), "image/png")
    await store.close()

    relay = TcpRelay(*s3_env.host_port)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", relay.url)
    through_relay = s3_store(f"s3://{s3_bucket}/images", max_attempts=1)
    try:
        stream = await through_relay.open(key)
        chunks = stream.chunks()
        assert len(await anext(chunks)) > 0
        relay.stop()
        with pytest.raises(StorageUnavailable, match="reading the image"):
            async for _ in chunks:
                pass
    finally:
        relay.stop()
        await through_relay.close()


async def test_s3_calls_and_chunk_reads_never_block_the_event_loop(s3_env, s3_bucket, monkeypatch):
    """While S3 stalls, the loop keeps running: here the loop itself must end the stall.

    Were a boto3 call or a chunk read made on the event loop, the task that resumes the relay could not
    run, and the read would fail on its timeout instead.
    """
    store = s3_store(f"s3://{s3_bucket}/images")
    await store.init()
    key, data = new_key(), os.urandom(24 * 1024 * 1024)  # more than the socket buffers hold
    await store.put(key, data, "image/png")
    await store.close()

    relay = TcpRelay(*s3_env.host_port)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", relay.url)
    through_relay = s3_store(f"s3://{s3_bucket}/images", read_timeout=5, max_attempts=1)

    async def resume_once_held() -> None:
        # Waits in a thread; only a free event loop gets to run the resume() after it.
        held = await asyncio.to_thread(relay.holding.wait, 30)
        relay.resume()
        assert held, "no bytes waited in the paused relay"

    try:
        relay.pause()
        resumer = asyncio.create_task(resume_once_held())
        stream = await through_relay.open(key)  # GetObject waits on the paused relay
        await resumer
        chunks = stream.chunks()
        received = [await anext(chunks)]
        relay.pause()  # stall mid-body: the next reads drain the buffers, then wait
        resumer = asyncio.create_task(resume_once_held())
        received += [chunk async for chunk in chunks]
        await resumer
        assert b"".join(received) == data
    finally:
        relay.stop()
        await through_relay.close()
