"""A TCP relay between the service and MySQL that can fail one chosen COMMIT, for fault tests.

It reads the client's side of the MySQL protocol (a packet: 3-byte length, sequence number, payload; a
command starts at sequence 0, COM_QUERY is 0x03 followed by the SQL text). A connection whose statement
matches `arm(pattern)` has its next COMMIT failed in one of three ways:

* "freeze": the COMMIT reaches the server, its answer is held back for `seconds` (the client times out);
* "cut":    the COMMIT reaches the server and is answered (durable), then both sockets are closed before
            the answer reaches the client;
* "hold":   the COMMIT itself is held for `seconds` and only then sent to the server, whatever the client
            did meanwhile (a database that froze just as the COMMIT arrived and commits it later).

`faulted` is set once the fault is in place and `settled` once its COMMIT reached the server and was
answered (or the server closed): tests wait on these events, never on sleeps.
"""

import contextlib
import re
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

COM_QUERY = 0x03
COMMIT = re.compile(rb"^\s*COMMIT\s*;?\s*$", re.IGNORECASE)


@dataclass
class Fault:
    pattern: re.Pattern[bytes]
    mode: str
    seconds: float
    times: int = 1
    faulted: threading.Event = field(default_factory=threading.Event)
    settled: threading.Event = field(default_factory=threading.Event)
    count: int = 0


class _Link:
    """One client connection and its server connection."""

    def __init__(self, relay: "CommitRelay", client: socket.socket) -> None:
        self.relay = relay
        self.client = client
        self.server = socket.create_connection(relay.upstream, timeout=10)
        self.server.settimeout(None)
        self.matched: Fault | None = None  # armed by a matching statement, fired by the next COMMIT
        self.hold_answers = threading.Event()  # set: answers from the server are held back
        self.release = threading.Event()
        self.cut_after_answer: Fault | None = None
        self.answer_for: Fault | None = None  # the fault whose COMMIT's answer is awaited

    def start(self) -> None:
        threading.Thread(target=self._client_to_server, daemon=True).start()
        threading.Thread(target=self._server_to_client, daemon=True).start()

    def close(self) -> None:
        for sock in (self.client, self.server):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()

    def _client_to_server(self) -> None:
        buffer = b""
        try:
            while True:
                data = self.client.recv(65536)
                if not data:
                    break
                buffer += data
                while len(buffer) >= 4:
                    length = int.from_bytes(buffer[:3], "little")
                    if len(buffer) < 4 + length:
                        break
                    packet, buffer = buffer[: 4 + length], buffer[4 + length :]
                    if not self._forward(packet):
                        return
        except OSError:
            pass
        # The client went away: the server hears it (as it would), unless a held COMMIT still owns the link.
        if self.answer_for is None and not self.hold_answers.is_set():
            self.close()

    def _forward(self, packet: bytes) -> bool:
        sequence, payload = packet[3], packet[4:]
        if sequence == 0 and payload[:1] == bytes([COM_QUERY]):
            sql = payload[1:]
            fault = self.relay.match(sql)
            if fault is not None:
                self.matched = fault
            elif self.matched is not None and COMMIT.match(sql):
                fault, self.matched = self.matched, None
                return self._fail_commit(fault, packet)
        self.server.sendall(packet)
        return True

    def _fail_commit(self, fault: Fault, packet: bytes) -> bool:
        self.answer_for = fault
        if fault.mode == "hold":
            fault.faulted.set()
            threading.Timer(fault.seconds, self._send_held, (fault, packet)).start()
            return False  # this link carries nothing more from the client
        if fault.mode == "freeze":
            self.hold_answers.set()
            threading.Timer(fault.seconds, self.release.set).start()
        elif fault.mode == "cut":
            self.cut_after_answer = fault
        else:
            raise ValueError(f"unknown fault mode {fault.mode!r}")
        self.server.sendall(packet)
        fault.faulted.set()
        return True

    def _send_held(self, fault: Fault, packet: bytes) -> None:
        with contextlib.suppress(OSError):
            self.server.sendall(packet)

    def _server_to_client(self) -> None:
        try:
            while True:
                data = self.server.recv(65536)
                if not data:
                    break
                fault = self.answer_for
                if fault is not None:
                    self.answer_for = None
                    fault.settled.set()  # the server answered the COMMIT: its outcome is decided
                    if fault.mode in ("cut", "hold"):
                        break
                    if fault.mode == "freeze":
                        self.release.wait()
                        self.hold_answers.clear()
                self.client.sendall(data)
        except OSError:
            pass
        if self.answer_for is not None:
            self.answer_for.settled.set()  # the server closed: it will not commit it now
        self.close()


class CommitRelay:
    """Listens on 127.0.0.1 (a free port) and relays every connection to `upstream`."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        self._links: list[_Link] = []
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def arm(self, pattern: str, mode: str, seconds: float = 0.0, times: int = 1) -> Fault:
        """Fail the COMMIT after the next `times` statements matching `pattern` (a regex on the SQL)."""
        fault = Fault(re.compile(pattern.encode(), re.IGNORECASE | re.DOTALL), mode, seconds, times)
        with self._lock:
            self._faults.append(fault)
        return fault

    def match(self, sql: bytes) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.count < fault.times and fault.pattern.search(sql):
                    fault.count += 1
                    return fault
        return None

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                link = _Link(self, client)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._links.append(link)
            link.start()

    def close(self) -> None:
        self._closed = True
        with contextlib.suppress(OSError):
            self.listener.close()
        with self._lock:
            links = list(self._links)
        for link in links:
            link.close()


@contextlib.contextmanager
def tcp_relay(host: str, port: int) -> Iterator[CommitRelay]:
    relay = CommitRelay((host, port))
    try:
        yield relay
    finally:
        relay.close()
