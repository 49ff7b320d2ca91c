"""How a stored image's bytes leave: handed to the ASGI server by path where it offers that (the
`http.response.pathsend` extension: Granian does, uvicorn does not), else one body, else a few chunks in
memory at a time however large the image."""

from fastapi import Response
from fastapi.responses import StreamingResponse

from pixyproxy.domain.ports.blobs import BlobStream
from pixyproxy.domain.streams import read_whole

ONE_BODY = 1024 * 1024  # images up to this size are read whole and sent as one body
PATHSEND = "http.response.pathsend"


class PathSendResponse(Response):
    def __init__(self, path: str, status_code: int) -> None:
        super().__init__(status_code=status_code)
        self.path = path

    async def __call__(self, scope, receive, send) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        await send({"type": PATHSEND, "path": self.path})


async def body_response(stream: BlobStream, length: int, whole: bool, status: int, scope) -> Response:
    """`whole`: the stream is the entire file (no byte range), so the server may send the file itself."""
    # Only the local folder's streams name a file; a stream from any other store has no such attribute.
    path = getattr(stream, "local_path", None) if whole and PATHSEND in scope.get("extensions", {}) else None
    if path is not None:
        await stream.aclose()
        return PathSendResponse(path, status_code=status)
    if length <= ONE_BODY:  # one read, one body; an error now is still a proper error answer
        return Response(await read_whole(stream), status_code=status)
    return StreamingResponse(stream.chunks(), status_code=status)
