"""Where the ASGI server offers `http.response.pathsend` (Granian does), a whole stored file is handed
over by its path with the planned headers; a byte range, or a server without the extension, gets the
bytes themselves."""

from pathlib import Path

import httpx

from tests.support.embedded import in_process_app

PATHSEND = {"http.response.pathsend": {}}


async def _call(app, path: str, query: bytes = b"", headers=(), extensions=None) -> list[dict]:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query,
        "root_path": "",
        "headers": [(b"host", b"t"), *headers],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
        "extensions": extensions or {},
    }
    sent: list[dict] = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    await app(scope, receive, send)
    return sent


def _header(start: dict, name: bytes) -> bytes:
    return dict(start["headers"])[name]


async def test_whole_files_go_by_path_and_ranges_as_bytes(tmp_path: Path) -> None:
    app = in_process_app(tmp_path)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
            guid = (await http.post("/image/", json={"prompt": "sent by path"})).json()["guid"]
            original = (await http.get(f"/image/{guid}/content")).content
            variant = (await http.get(f"/image/{guid}/content?width=64&format=webp")).content

        start, sent = await _call(app, f"/image/{guid}/content", extensions=PATHSEND)
        assert start["status"] == 200 and sent["type"] == "http.response.pathsend"
        assert Path(sent["path"]).read_bytes() == original
        assert int(_header(start, b"content-length")) == len(original)
        assert _header(start, b"etag") and b"x-request-id" in dict(start["headers"])

        # A small variant is kept in memory once made, and sent from there.
        start, sent = await _call(app, f"/image/{guid}/content", b"width=64&format=webp", extensions=PATHSEND)
        assert sent == {"type": "http.response.body", "body": variant}

        ranged = await _call(
            app, f"/image/{guid}/content", headers=[(b"range", b"bytes=0-9")], extensions=PATHSEND
        )
        assert ranged[0]["status"] == 206 and ranged[1] == {
            "type": "http.response.body",
            "body": original[:10],
        }

        plain = await _call(app, f"/image/{guid}/content")
        assert plain[1]["type"] == "http.response.body" and plain[1]["body"] == original
