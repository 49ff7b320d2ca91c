"""The HTTP/1.1 protocol uvicorn runs (httptools), answering what its parser refuses in the service's
error shape: a JSON 400 `{"detail", "code": "bad_request", "request_id"}` with X-Request-ID, instead of
uvicorn's plain text. Such a request never reaches the app (no route, no middleware), so it is logged here
at WARNING, once.

What the parser refuses: a malformed request line (an unknown method, a NUL or raw non-ASCII byte in the
path), a bad or doubled Content-Length, Transfer-Encoding with Content-Length, invalid header bytes.
"""

import logging

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from pixyproxy.entrypoints.request_id import new_request_id

log = logging.getLogger("pixyproxy.http")

BAD_REQUEST = "the request is not valid HTTP/1.1 ({reason}); the connection is closed"


class JsonErrorHttpToolsProtocol(HttpToolsProtocol):
    def send_400_response(self, msg: str) -> None:
        request_id = new_request_id()
        reason = msg.rstrip(".") or "malformed"
        log.warning("%s: refused by the HTTP parser (%s)", request_id, reason)
        body = orjson.dumps(
            {"detail": BAD_REQUEST.format(reason=reason), "code": "bad_request", "request_id": request_id}
        )
        head = [b"HTTP/1.1 400 Bad Request\r\n"]
        for name, value in self.server_state.default_headers:
            head += [name, b": ", value, b"\r\n"]
        head += [
            b"content-type: application/json\r\n",
            b"content-length: " + str(len(body)).encode() + b"\r\n",
            b"x-request-id: " + request_id.encode() + b"\r\n",
            b"x-content-type-options: nosniff\r\n",
            b"connection: close\r\n\r\n",
        ]
        self.transport.write(b"".join(head) + body)
        self.transport.close()
