"""S3 for tests: a server in a container where an engine answers (tests/support/containers.py: MinIO with
PIXYPROXY_TEST_S3_IMAGE=minio/minio, or Debian's moto server), otherwise moto's S3 server in-process
(ThreadedMotoServer: real HTTP on 127.0.0.1 and a free port, so boto3 is not mocked).

Every test gets its own bucket. With CI=true and neither available, the S3 tests fail (services.unavailable).

Note: moto does not verify request signatures; presigned URLs are only proven valid against MinIO
(PIXYPROXY_TEST_S3_IMAGE=quay.io/minio/minio:RELEASE.2025-04-22T22-12-26Z or later, for conditional writes).
"""

import contextlib
import os
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from uuid import uuid4

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from pixyproxy.adapters.s3_blob_store import S3BlobStore
from pixyproxy.settings import Settings
from tests.support.containers import free_port, host_network_container, image_for
from tests.support.services import docker_available, unavailable

REGION = "us-east-1"


def s3_store(url: str, public_endpoint_url: str | None = None, **overrides) -> S3BlobStore:
    """An S3BlobStore with the settings' default timeouts, any of them overridden by keyword."""
    defaults = Settings(_env_file=None)
    options = {
        "connect_timeout": defaults.s3_connect_timeout_seconds,
        "read_timeout": defaults.s3_read_timeout_seconds,
        "max_attempts": defaults.s3_max_attempts,
        **overrides,
    }
    return S3BlobStore(url, public_endpoint_url, **options)


@dataclass(frozen=True)
class S3Endpoint:
    kind: str  # "minio" or "moto"
    url: str  # e.g. http://127.0.0.1:40123
    access_key: str
    secret_key: str
    region: str = REGION

    @property
    def verifies_signatures(self) -> bool:
        return self.kind == "minio"

    @property
    def host_port(self) -> tuple[str, int]:
        host, port = self.url.split("://", 1)[1].rsplit(":", 1)
        return host, int(port)

    def alias_url(self) -> str:
        """The same server under another host name, as clients behind a proxy would name it."""
        host, port = self.host_port
        alias = {"127.0.0.1": "localhost", "localhost": "127.0.0.1"}.get(host) or socket.gethostbyname(host)
        assert alias != host, f"no second name for {host}"
        return f"http://{alias}:{port}"

    def env(self) -> dict[str, str]:
        """boto3's own variables, for the service in a subprocess or in this process."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_ENDPOINT_URL_S3": self.url,
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        }

    def client(self):
        """A plain boto3 client for the tests' own checks (not the adapter under test)."""
        return boto3.client(
            "s3",
            endpoint_url=self.url,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name=self.region,
            config=Config(connect_timeout=2, read_timeout=10, retries={"max_attempts": 1}),
        )


def pytest_collection_modifyitems(items) -> None:
    """Mark every test that uses S3, the contract suites' s3_blob_store parameter included (`-m s3`)."""
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        if "s3_endpoint" in getattr(item, "fixturenames", ()) or "s3_blob_store" in params.values():
            item.add_marker(pytest.mark.s3)


def _answers(endpoint: "S3Endpoint") -> bool:
    client = endpoint.client()
    try:
        client.list_buckets()
    except Exception:
        return False
    finally:
        client.close()
    return True


@contextlib.contextmanager
def _start_container() -> Iterator[S3Endpoint]:
    """PIXYPROXY_TEST_S3_IMAGE (MinIO's, e.g. minio/minio) or Debian's moto server built by
    deploy/images/build.sh, on the host network at a free port of 127.0.0.1."""
    image = image_for("PIXYPROXY_TEST_S3_IMAGE", "s3")
    port = free_port()
    if "minio" in image.split(":")[0]:
        endpoint = S3Endpoint(
            "minio", f"http://127.0.0.1:{port}", "pixyproxy-test", "pixyproxy-test-secret-5c1e"
        )
        command = [
            "server",
            "/data",
            "--address",
            f"127.0.0.1:{port}",
            "--console-address",
            f"127.0.0.1:{free_port()}",
        ]
        env = {"MINIO_ROOT_USER": endpoint.access_key, "MINIO_ROOT_PASSWORD": endpoint.secret_key}
    else:  # moto accepts any credentials; distinctive ones let tests check they never reach a log
        endpoint = S3Endpoint(
            "moto", f"http://127.0.0.1:{port}", "pixyproxy-test-key", "pixyproxy-test-secret-5c1e"
        )
        command, env = [], {"S3_PORT": str(port), "S3_BIND_ADDRESS": "127.0.0.1"}
    with host_network_container(image, command, env, lambda: _answers(endpoint)):
        yield endpoint


@contextlib.contextmanager
def _start_moto() -> Iterator[S3Endpoint]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)  # port 0: a free one
    server.start()
    try:
        host, port = server.get_host_and_port()
        # moto accepts any credentials; distinctive ones let tests check they never reach a log.
        yield S3Endpoint("moto", f"http://{host}:{port}", "pixyproxy-test-key", "pixyproxy-test-secret-5c1e")
    finally:
        server.stop()


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[S3Endpoint]:
    starter = _start_container if docker_available() else _start_moto
    with contextlib.ExitStack() as stack:
        try:
            endpoint = stack.enter_context(starter())
        except Exception as exc:  # no engine, no image, moto missing ...
            unavailable(f"S3 ({starter.__name__.removeprefix('_start_')}: {exc})")
        yield endpoint


def empty_and_remove_bucket(endpoint: S3Endpoint, bucket: str) -> None:
    client = endpoint.client()
    try:
        for page in client.get_paginator("list_object_versions").paginate(Bucket=bucket):
            for item in page.get("Versions", []) + page.get("DeleteMarkers", []):
                client.delete_object(Bucket=bucket, Key=item["Key"], VersionId=item["VersionId"])
        client.delete_bucket(Bucket=bucket)
    except ClientError:
        pass  # never created, or already gone
    finally:
        client.close()


@pytest.fixture
def s3_bucket(s3_endpoint) -> Iterator[str]:
    """A fresh bucket name (not created: the store under test creates it), removed after the test."""
    bucket = f"pixyproxy-test-{uuid4().hex[:16]}"
    yield bucket
    empty_and_remove_bucket(s3_endpoint, bucket)


@pytest.fixture
def s3_env(s3_endpoint, monkeypatch) -> S3Endpoint:
    """Point boto3 in this process at the test S3, through its own variables only."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    for name, value in s3_endpoint.env().items():
        monkeypatch.setenv(name, value)
    return s3_endpoint


@pytest.fixture
async def s3_blob_store(s3_env, s3_bucket):
    store = s3_store(f"s3://{s3_bucket}/images")
    await store.init()
    yield store
    await store.close()


class TcpRelay:
    """Forwards 127.0.0.1:<port> to a target; stop() makes the target unreachable (refused, resets)."""

    def __init__(
        self, target_host: str, target_port: int, rewrite: Callable[[bytes], bytes] | None = None
    ) -> None:
        self.target = (target_host, target_port)
        self._rewrite = rewrite  # applied to the bytes a client sends, e.g. to drop a request header
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._stopped = False
        self._flowing = threading.Event()  # cleared by pause(): bytes wait in the relay
        self._flowing.set()
        self.holding = threading.Event()  # set once bytes wait in the relay since the last pause()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # listener closed
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                if self._stopped:
                    client.close()
                    upstream.close()
                    return
                self._sockets.update((client, upstream))
            for source, sink in ((client, upstream), (upstream, client)):
                rewrite = self._rewrite if source is client else None
                threading.Thread(target=self._pump, args=(source, sink, rewrite), daemon=True).start()

    def pause(self) -> None:
        """Hold every byte in the relay until resume(): S3 looks stalled, connections stay open."""
        self.holding.clear()
        self._flowing.clear()

    def resume(self) -> None:
        self._flowing.set()

    def _pump(self, source: socket.socket, sink: socket.socket, rewrite) -> None:
        try:
            while data := source.recv(65536):
                if not self._flowing.is_set():
                    self.holding.set()
                self._flowing.wait()
                sink.sendall(rewrite(data) if rewrite else data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def stop(self) -> None:
        self._flowing.set()
        with self._lock:
            self._stopped = True
            sockets, self._sockets = self._sockets, set()
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        self._listener.close()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        self._thread.join(timeout=5)


@pytest.fixture
def s3_relay(s3_endpoint) -> Iterator[TcpRelay]:
    """A relay to the test S3 that a test can cut (S3 going down while the service runs)."""
    relay = TcpRelay(*s3_endpoint.host_port)
    yield relay
    relay.stop()
