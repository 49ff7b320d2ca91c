"""Load generation: wrk when it is installed (bench/setup installs it), else bench/pyload.py.

Either way the load generator runs in its own process(es) on the same machine as the server, so it
competes with the server for the same cores; both sides of every ratio pay that alike.
"""

import json
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

WRK_SCRIPT = """
local paths = {%(paths)s}
local requests = {}
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("seed", counter)
end

function init(args)
  math.randomseed(os.time() * 1000 + (seed or 0))
  for i, path in ipairs(paths) do
    requests[i] = wrk.format("GET", path)
  end
end

function request()
  return requests[math.random(#requests)]
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests": %%d, "duration_us": %%d, "bytes": %%d, "connect": %%d, "read": %%d, '
    .. '"write": %%d, "status": %%d, "timeout": %%d, "p50_us": %%d, "p99_us": %%d}\\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status,
    e.timeout, latency:percentile(50), latency:percentile(99)))
end
"""


@dataclass
class LoadResult:
    requests: int
    seconds: float
    bytes: int
    errors: int  # connection errors, timeouts and non-2xx/3xx answers
    p50_ms: float
    p99_ms: float
    tool: str
    server_cpu_s: float = 0.0  # CPU time of the loaded server's processes during the run, when measured

    @property
    def requests_per_s(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def megabytes_per_s(self) -> float:
        return self.bytes / self.seconds / 1e6 if self.seconds else 0.0


def wrk_path() -> str | None:
    return shutil.which("wrk")


def tool_name(force_python: bool = False) -> str:
    return "wrk" if wrk_path() and not force_python else "bench/pyload.py (Python, asyncio)"


def run_load(
    base_url: str,
    paths: list[str],
    connections: int,
    seconds: float,
    threads: int = 2,
    force_python: bool = False,
    once: bool = False,
) -> LoadResult:
    """Keep `connections` keep-alive connections busy for `seconds`, each request a random path.

    `once`: each connection sends a single request instead (all at once), with the Python generator.
    """
    wrk = wrk_path()
    if wrk and not force_python and not once:
        return _run_wrk(wrk, base_url, paths, connections, seconds, threads)
    return _run_python(base_url, paths, connections, seconds, processes=1 if once else threads, once=once)


def _run_wrk(wrk: str, base_url: str, paths, connections: int, seconds: float, threads: int) -> LoadResult:
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "paths.lua"
        script.write_text(WRK_SCRIPT % {"paths": ", ".join(json.dumps(p) for p in paths)})
        duration = f"{max(1, round(seconds))}s"
        command = [wrk, "-t", str(min(threads, connections)), "-c", str(connections), "-d", duration]
        command += ["--timeout", "10s", "-s", str(script), base_url]
        out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    line = next((x for x in out.splitlines() if x.startswith("WRK_JSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no summary:\n{out}")
    data = json.loads(line.removeprefix("WRK_JSON "))
    errors = sum(data[k] for k in ("connect", "read", "write", "status", "timeout"))
    return LoadResult(
        requests=data["requests"],
        seconds=data["duration_us"] / 1e6,
        bytes=data["bytes"],
        errors=errors,
        p50_ms=data["p50_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        tool="wrk",
    )


def _run_python(
    base_url: str, paths, connections: int, seconds: float, processes: int, once: bool = False
) -> LoadResult:
    processes = max(1, min(processes, connections))
    per_process = [
        connections // processes + (1 if i < connections % processes else 0) for i in range(processes)
    ]
    with tempfile.TemporaryDirectory() as tmp:
        paths_file = Path(tmp) / "paths.json"
        paths_file.write_text(json.dumps(paths))
        # Each writes its result to a file: a pipe not read yet would fill up and cut its large output.
        outputs = [Path(tmp) / f"result-{i}.json" for i in range(len(per_process))]
        running = [
            subprocess.Popen(
                [sys.executable, "-m", "bench.pyload", base_url, str(paths_file), str(n), str(seconds)]
                + ["--out", str(out)]
                + (["--once"] if once else []),
            )
            for n, out in zip(per_process, outputs, strict=True)
        ]
        for process in running:
            if process.wait():
                raise RuntimeError(f"bench/pyload.py exited with {process.returncode}")
        results = [json.loads(out.read_text()) for out in outputs]
    latencies = sorted(x for r in results for x in r["sample_ms"])
    return LoadResult(
        requests=sum(r["requests"] for r in results),
        seconds=max(r["seconds"] for r in results),
        bytes=sum(r["bytes"] for r in results),
        errors=sum(r["errors"] for r in results),
        p50_ms=latencies[len(latencies) // 2] if latencies else 0.0,
        p99_ms=latencies[int(len(latencies) * 0.99)] if latencies else 0.0,
        tool="pyload",
    )
