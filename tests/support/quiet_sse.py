"""An HTTP server whose job events stream opens with the job, queued, and then stays open with nothing
but keep-alive comments: a job that never ends, for the clients' wait timeouts."""

import contextlib
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from uuid import uuid4


@dataclass
class QuietStream:
    base_url: str
    job_id: str
    connections: list[str] = field(default_factory=list)


@contextlib.contextmanager
def quiet_sse_server(ping_every: float | None) -> Iterator[QuietStream]:
    """`ping_every` seconds between comment lines (None: none at all)."""
    job_id = str(uuid4())
    job = {"id": job_id, "status": "queued", "created_at": "2026-01-02T03:04:05Z"}
    stop = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            stream.connections.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            self.wfile.write(f"event: status\r\ndata: {json.dumps(job)}\r\n\r\n".encode())
            self.wfile.flush()
            try:
                while not stop.wait(ping_every):
                    self.wfile.write(b": ping\r\n\r\n")
                    self.wfile.flush()
            except OSError:  # the client went away
                pass

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    stream = QuietStream(f"http://127.0.0.1:{server.server_address[1]}", job_id)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield stream
    finally:
        stop.set()
        server.shutdown()
        server.server_close()
        thread.join()
