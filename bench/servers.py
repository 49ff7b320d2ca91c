"""Starting and stopping the processes a benchmark measures: PixyProxy, the plain baseline, moto.

Every server binds 127.0.0.1 on a free port and is stopped (by its own pid) when the `with` block ends.
"""

import asyncio
import contextlib
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from pixyproxy.entrypoints.cli.server import UVICORN_OPTIONS

__all__ = [
    "UVICORN_OPTIONS",
    "RssSampler",
    "Server",
    "free_port",
    "pixyproxy_server",
    "process_tree_rss",
    "start_server",
]

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    name: str
    base_url: str
    process: subprocess.Popen
    log_path: Path

    @property
    def port(self) -> int:
        return int(self.base_url.rsplit(":", 1)[1])

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def clean_env(extra: dict[str, str]) -> dict[str, str]:
    """The bench's environment without any PIXYPROXY_/DB_ setting of the caller's, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIXYPROXY_", "DB_"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
    env.update(extra)
    return env


@contextlib.contextmanager
def start_server(
    name: str,
    command: list[str],
    workdir: Path,
    env: dict[str, str],
    ready_path: str = "/healthz",
    timeout: float = 30.0,
) -> Iterator[Server]:
    port = free_port()
    log_path = workdir / f"{name}-{port}.log"
    command = [part.replace("{port}", str(port)) for part in command]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            command, cwd=workdir, env=clean_env(env), stdout=log, stderr=subprocess.STDOUT
        )
    server = Server(name, f"http://127.0.0.1:{port}", process, log_path)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited with {process.returncode}:\n{server.log_tail()}")
            try:
                with urllib.request.urlopen(server.base_url + ready_path, timeout=1) as answer:
                    if answer.status < 500:
                        break
            except urllib.error.HTTPError as exc:
                if exc.code < 500:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not answer in {timeout}s:\n{server.log_tail()}")
            time.sleep(0.05)
        yield server
    finally:
        stop(process)


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def pixyproxy_server(
    workdir: Path,
    env: dict[str, str],
    workers: int = 1,
    name: str = "pixyproxy",
    python: str = sys.executable,
    server: str = "uvicorn",
):
    """The real service, started as users start it: `pixyproxy serve` (on `python`, which may be another
    tree's, with `env` naming that tree in PYTHONPATH)."""
    command = [python, "-m", "pixyproxy.entrypoints.cli", "serve", "--port", "{port}"]
    command += ["--workers", str(workers)]
    if server != "uvicorn":  # a tree from before `--server` knows only uvicorn
        command += ["--server", server]
    return start_server(name, command, workdir, env)


def baseline_server(workdir: Path, body: bytes, content_type: str, name: str):
    """The bare ASGI app (bench/baseline.py) answering `body` from memory, under the same uvicorn options."""
    body_file = workdir / f"{name}.body"
    body_file.write_bytes(body)
    command = [sys.executable, "-m", "bench.baseline", "--port", "{port}", "--body-file", str(body_file)]
    command += ["--content-type", content_type]
    return start_server(name, command, workdir, {}, ready_path="/")


def _children(pid: int) -> list[int]:
    try:
        tasks = Path(f"/proc/{pid}/task").iterdir()
        found: list[int] = []
        for task in tasks:
            text = (task / "children").read_text().split()
            found += [int(c) for c in text]
        return found
    except OSError:
        return []


def process_tree(pid: int) -> list[int]:
    pids, queue = [], [pid]
    while queue:
        current = queue.pop()
        pids.append(current)
        queue += _children(current)
    return pids


def _status_kb(pid: int, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def process_tree_rss(pid: int) -> int:
    """Resident bytes of a process and all its descendants (uvicorn's workers are children)."""
    return sum(_status_kb(p, "VmRSS") for p in process_tree(pid)) * 1024


def reset_peak_rss(pid: int) -> bool:
    """Reset VmHWM (peak RSS) of the tree, so the next read is the peak since now; False if not allowed."""
    ok = True
    for p in process_tree(pid):
        try:
            Path(f"/proc/{p}/clear_refs").write_text("5")
        except OSError:
            ok = False
    return ok


def process_tree_peak_rss(pid: int) -> int:
    return sum(_status_kb(p, "VmHWM") for p in process_tree(pid)) * 1024


class RssSampler:
    """A server's RSS (its whole process tree) over time: (seconds since start, bytes) samples and their
    peak, sampled by `run()` in an event loop or by `in_background()` in a thread."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak, self.started = pid, 0, time.perf_counter()
        self.samples: list[tuple[float, int]] = []

    def sample(self) -> int:
        rss = process_tree_rss(self.pid)
        self.samples.append((time.perf_counter() - self.started, rss))
        self.peak = max(self.peak, rss)
        return rss

    async def run(self, interval: float = 1.0) -> None:
        while True:
            self.sample()
            await asyncio.sleep(interval)

    @contextlib.contextmanager
    def in_background(self, interval: float) -> Iterator["RssSampler"]:
        """Samples every `interval` seconds in a thread while the block runs (a short peak needs a short
        interval: the load runs in this process and would hold an event loop up)."""
        done = threading.Event()

        def sample_until_done() -> None:
            while not done.is_set():
                self.sample()
                done.wait(interval)

        thread = threading.Thread(target=sample_until_done, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            done.set()
            thread.join()

    def window(self, end: float, seconds: float) -> int:
        """Median RSS of the samples in (end - seconds, end]."""
        values = [rss for t, rss in self.samples if end - seconds < t <= end]
        return int(statistics.median(values)) if values else self.sample()


def process_tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) used so far by a process and its descendants."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for p in process_tree(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return total / ticks
