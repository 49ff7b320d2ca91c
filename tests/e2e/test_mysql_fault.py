"""MySQL goes away and comes back: the service answers 503 JSON meanwhile and recovers with no restart.

The test runs its own server, so stopping it disturbs nobody else: a container (Testcontainers, stopped,
started and paused) where an engine answers, else its own MariaDB (mariadb-install-db + mariadbd in a
temporary datadir, on a free port; stopped, started and sent SIGSTOP).
"""

import contextlib
import getpass
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
import pymysql
import pytest

from tests.e2e.server import free_port, run_server
from tests.support.mysql import mysql_container
from tests.support.services import docker_available, unavailable


class PrivateMariaDB:
    def __init__(self, root: Path, port: int) -> None:
        self.root = root
        self.datadir = root / "data"
        self.port = port
        self.process: subprocess.Popen | None = None
        self.user = getpass.getuser()
        self.small = ["--innodb-log-file-size=4M", "--innodb-buffer-pool-size=16M"]

    def install(self) -> None:
        subprocess.run(
            ["mariadb-install-db", "--no-defaults", f"--datadir={self.datadir}", f"--user={self.user}",
             "--auth-root-authentication-method=normal", "--skip-test-db", "--skip-name-resolve",
             *self.small],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["mariadbd", "--no-defaults", f"--datadir={self.datadir}", f"--user={self.user}",
             f"--port={self.port}", "--bind-address=127.0.0.1", f"--socket={self.root / 'sock'}",
             f"--pid-file={self.root / 'pid'}", f"--log-error={self.root / 'error.log'}",
             "--skip-grant-tables", "--skip-name-resolve", "--skip-log-bin", *self.small],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while True:
            try:
                pymysql.connect(host="127.0.0.1", port=self.port, user="root", connect_timeout=1).close()
                return
            except pymysql.MySQLError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    log = (self.root / "error.log").read_text(errors="replace")
                    raise RuntimeError(f"private mariadbd did not start:\n{log}") from None
                time.sleep(0.05)

    def stop(self, timeout: float = 30) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    @property
    def running(self) -> bool:
        return self.process is not None

    def freeze(self) -> None:
        """The server accepts TCP but never answers."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGSTOP)
        wait_until_stopped(self.process.pid)

    def thaw(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGCONT)

    @property
    def env(self) -> dict[str, str]:
        """The service's settings for this server: a 2 s read timeout keeps the hung-server test short."""
        return {
            "PIXYPROXY_DATABASE_URL": f"mysql://root@127.0.0.1:{self.port}/pixyproxy",
            "PIXYPROXY_MYSQL_READ_TIMEOUT_SECONDS": "2",
        }


class ContainerMariaDB:
    """The same, in a container on the host network: stopped and started (its data kept), and paused."""

    def __init__(self) -> None:
        self._stack = contextlib.ExitStack()
        self.server, container = self._stack.enter_context(mysql_container())
        self._container = container.get_wrapped_container()
        self.running = True

    def start(self) -> None:
        self._container.start()
        deadline = time.monotonic() + 60
        while True:  # polled: the server is another process, with no event to wait on
            try:
                self.server.connect(timeout=1).close()
                break
            except pymysql.MySQLError:
                assert time.monotonic() < deadline, "the container did not come back"
                time.sleep(0.1)
        self.running = True

    def stop(self) -> None:
        self._container.stop(timeout=30)
        self.running = False

    def freeze(self) -> None:
        self._container.pause()  # the cgroup freezer: returns once every thread is stopped

    def thaw(self) -> None:
        self._container.unpause()

    def close(self) -> None:
        self._stack.close()

    @property
    def env(self) -> dict[str, str]:
        return {
            "PIXYPROXY_DATABASE_URL": self.server.url("pixyproxy"),
            "PIXYPROXY_MYSQL_READ_TIMEOUT_SECONDS": "2",
        }


@pytest.fixture(scope="module")
def private_mariadb():
    if docker_available():
        try:
            instance = ContainerMariaDB()
        except Exception as exc:  # no image and none can be built, a server that never answers ...
            unavailable(f"MariaDB in a container ({exc})")
        try:
            yield instance
            assert instance.running, "a test left the server stopped"
        finally:
            instance.close()
        return
    if not (shutil.which("mariadb-install-db") and shutil.which("mariadbd")):
        unavailable("mariadb-install-db and mariadbd (for a private MariaDB instance)")
    # A short path: the server's unix socket must fit in 108 bytes.
    root = Path(tempfile.mkdtemp(prefix="pxdb-", dir="/tmp"))
    instance = PrivateMariaDB(root, free_port())
    try:
        instance.install()
        instance.start()
        yield instance
        assert instance.process is not None, "a test left the private server stopped"
    finally:
        if instance.process is not None and instance.process.poll() is None:
            os.kill(instance.process.pid, signal.SIGCONT)  # in case a test left it stopped
        instance.stop()
        shutil.rmtree(root, ignore_errors=True)


def wait_until_stopped(pid: int) -> None:
    """SIGSTOP reaches a process's threads one by one: on a busy machine one of them can still answer a
    query just after kill() returns. The parent hears when the whole process has stopped."""
    stopped = os.waitid(os.P_PID, pid, os.WSTOPPED)
    assert stopped is not None and stopped.si_code == os.CLD_STOPPED, stopped


def assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["code"] == "metadata_unavailable" and body["request_id"]
    assert "Traceback" not in response.text


def test_mysql_down_is_503_json_and_the_service_recovers_without_restart(tmp_path, private_mariadb):
    with (
        run_server(tmp_path, private_mariadb.env) as server,
        httpx.Client(base_url=server.base_url, timeout=15) as client,
    ):
        before = client.post("/image/", json={"prompt": "made before the outage"})
        assert before.status_code == 200, before.text
        guid = before.json()["guid"]

        private_mariadb.stop()
        started = time.monotonic()
        assert_unavailable(client.get(f"/image/{guid}"))
        assert time.monotonic() - started < 10  # refused connections fail fast, not after a long hang
        assert_unavailable(client.get("/image/"))
        assert_unavailable(client.post("/image/", json={"prompt": "made during the outage"}))
        ready = client.get("/readyz")
        assert ready.status_code == 503 and ready.json()["checks"]["metadata"] != "ok"

        private_mariadb.start()
        assert client.get(f"/image/{guid}").json() == before.json()
        after = client.post("/image/", json={"prompt": "made after the outage"})
        assert after.status_code == 200, after.text
        listed = [d["prompt"] for d in client.get("/image/").json()]
        assert listed == ["made after the outage", "made before the outage"]
        assert client.get("/readyz").status_code == 200
        assert server.process.poll() is None  # the same process throughout


def test_a_hung_mysql_is_503_after_the_read_timeout_and_recovers(tmp_path, private_mariadb):
    """Frozen: the server accepts TCP but never answers; the configured read timeout (2 s) ends it."""
    with (
        run_server(tmp_path, private_mariadb.env) as server,
        httpx.Client(base_url=server.base_url, timeout=15) as client,
    ):
        made = client.post("/image/", json={"prompt": "before the hang"})
        assert made.status_code == 200, made.text
        private_mariadb.freeze()
        try:
            assert_unavailable(client.get(f"/image/{made.json()['guid']}"))
        finally:
            private_mariadb.thaw()
        assert client.get(f"/image/{made.json()['guid']}").json() == made.json()
        assert server.process.poll() is None
