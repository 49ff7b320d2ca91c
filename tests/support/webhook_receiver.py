"""A real webhook receiver on 127.0.0.1 for tests: it verifies every request with standardwebhooks'
Webhook.verify (as a Ducky developer would) and answers the statuses it is scripted with.

Runs in a thread, so async tests (through `await receiver.wait_async(n)`) and tests driving a server in
another process use it alike.
"""

import contextlib
import http.server
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from standardwebhooks import Webhook, WebhookVerificationError

SECRET = "whsec_" + "cGl4eXByb3h5LXRlc3Qtd2ViaG9vay1zZWNyZXQtMzI="  # base64 of 32 test bytes


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    verified: bool
    payload: object | None  # Webhook.verify's answer (the parsed JSON) when verified
    at: float  # time.monotonic() when it arrived


@dataclass
class WebhookReceiver:
    port: int
    secret: str = SECRET
    # Statuses to answer, in order; once used up, `default_status`.
    script: list[int] = field(default_factory=list)
    default_status: int = 204
    received: list[Received] = field(default_factory=list)
    # While set to an Event, each request waits for it before answering (a receiver that hangs).
    hold: threading.Event | None = None
    _arrived: threading.Condition = field(default_factory=threading.Condition)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/pixyproxy"

    def wait(self, count: int, timeout: float = 10.0) -> list[Received]:
        """Block until `count` requests have arrived (or fail the test)."""
        with self._arrived:
            if not self._arrived.wait_for(lambda: len(self.received) >= count, timeout):
                raise AssertionError(f"{len(self.received)} webhooks arrived, expected {count}")
            return list(self.received)

    async def wait_async(self, count: int, timeout: float = 10.0) -> list[Received]:
        import asyncio

        return await asyncio.to_thread(self.wait, count, timeout)

    def _record(self, item: Received) -> int:
        with self._arrived:
            self.received.append(item)
            status = self.script.pop(0) if self.script else self.default_status
            self._arrived.notify_all()
            return status


class _Handler(http.server.BaseHTTPRequestHandler):
    receiver: WebhookReceiver
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length)
        headers = {k.lower(): v for k, v in self.headers.items()}
        try:
            payload = Webhook(self.receiver.secret).verify(body, headers)
            verified = True
        except WebhookVerificationError:
            payload, verified = None, False
        hold = self.receiver.hold
        status = self.receiver._record(
            Received(self.path, headers, body, verified, payload, time.monotonic())
        )
        if hold is not None:
            hold.wait(30)
        self.send_response(status)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, format: str, *args) -> None:
        pass


@contextlib.contextmanager
def webhook_receiver(
    script: list[int] | None = None, secret: str = SECRET, port: int = 0
) -> Iterator[WebhookReceiver]:
    """A receiver on `port` (0: any free one) answering `script` then 204."""
    handler = type("Handler", (_Handler,), {})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    server.daemon_threads = True
    receiver = WebhookReceiver(port=server.server_address[1], secret=secret, script=list(script or []))
    handler.receiver = receiver
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        if receiver.hold is not None:
            receiver.hold.set()
        server.shutdown()
        server.server_close()
        thread.join()
