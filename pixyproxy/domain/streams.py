"""Reading a blob whole, written once (edits' sources, /v1's b64_json, variants' originals)."""

from pixyproxy.domain.ports.blobs import BlobStream


async def read_whole(stream: BlobStream) -> bytes:
    """Every byte of an open stream, closed after."""
    try:
        return b"".join([chunk async for chunk in stream.chunks()])
    finally:
        await stream.aclose()
