"""The plain stack the service is compared with: a bare ASGI app answering one constant body from memory.

It is served by the same ASGI server with the same options as `pixyproxy serve` (uvicorn, uvloop,
httptools, no access log, no server header), so a ratio against it shows what PixyProxy itself costs.

    python -m bench.baseline --port 8000 --body-file body.json --content-type application/json
"""

import argparse
from pathlib import Path


def constant_app(body: bytes, content_type: str):
    headers = [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode())]
    start = {"type": "http.response.start", "status": 200, "headers": headers}
    message = {"type": "http.response.body", "body": body}

    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                event = await receive()
                if event["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif event["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        await send(start)
        await send(message)

    return app


def main() -> None:
    import uvicorn

    from bench.servers import UVICORN_OPTIONS

    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--body-file", type=Path, required=True)
    parser.add_argument("--content-type", default="application/json")
    args = parser.parse_args()
    app = constant_app(args.body_file.read_bytes(), args.content_type)
    uvicorn.run(app, host="127.0.0.1", port=args.port, **UVICORN_OPTIONS)


if __name__ == "__main__":
    main()
