"""The bare FastAPI app the stack bench compares with: one route per figure, returning constant bytes from
memory, on the same server and options as `pixyproxy serve`.

    python -m bench.bare_fastapi --port 8000 --detail-file detail.json --content-file image.png
"""

import argparse
from pathlib import Path


def bare_app(detail: bytes, content: bytes):
    from fastapi import FastAPI, Response

    app = FastAPI()

    @app.get("/image/{guid}")
    async def get_image(guid: str) -> Response:
        return Response(detail, media_type="application/json")

    @app.get("/image/{guid}/content")
    async def image_content(guid: str) -> Response:
        return Response(content, media_type="image/png")

    @app.get("/healthz")
    async def healthz() -> Response:
        return Response(b'{"status":"ok"}', media_type="application/json")

    return app


def main() -> None:
    import uvicorn

    from bench.servers import UVICORN_OPTIONS

    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--detail-file", type=Path, required=True)
    parser.add_argument("--content-file", type=Path, required=True)
    args = parser.parse_args()
    app = bare_app(args.detail_file.read_bytes(), args.content_file.read_bytes())
    uvicorn.run(app, host="127.0.0.1", port=args.port, **UVICORN_OPTIONS)


if __name__ == "__main__":
    main()
