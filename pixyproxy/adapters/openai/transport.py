"""The SDK's aiohttp client (`openai[aiohttp]`), with a JSON answer's body read in one read.

The SDK's aiohttp bridge hands a body over in 16 KB chunks, each through four async iterators before it
is joined again: for a 263 KB answer that is 17 trips, for a real 4 MB one about 250. A JSON answer is
parsed whole anyway, so it is read whole; anything else (an image download, with its size cap; a stream
of server-sent events) keeps the chunks. This leans on the pinned SDK's vendored bridge (its transport,
its stream's aiohttp response): should an upgrade move them, the chunks come back, and
tests/contract/test_openai_answers_read_once.py says so.
"""

from collections.abc import AsyncIterator

import httpx2
import openai
from openai._vendor.httpx_aiohttp import AiohttpTransport
from openai._vendor.httpx_aiohttp.transport import map_aiohttp_exceptions


class _WholeBody(httpx2.AsyncByteStream):
    def __init__(self, chunked: httpx2.AsyncByteStream, response) -> None:
        self._chunked = chunked  # closes the aiohttp response as the SDK's own stream would
        self._response = response

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with map_aiohttp_exceptions():  # the SDK's mapping: a dropped read is still an httpx2 ReadError
            yield await self._response.read()

    async def aclose(self) -> None:
        await self._chunked.aclose()


class OneReadTransport(AiohttpTransport):
    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        response = await super().handle_async_request(request)
        stream = response.stream
        aiohttp_response = getattr(stream, "_aiohttp_response", None)
        json = response.headers.get("content-type", "").startswith("application/json")
        if json and aiohttp_response is not None and isinstance(stream, httpx2.AsyncByteStream):
            response.stream = _WholeBody(stream, aiohttp_response)
        return response


def one_read_client(timeout: httpx2.Timeout, limits: httpx2.Limits) -> httpx2.AsyncClient:
    """openai.DefaultAioHttpClient with the one-read transport."""
    return openai.DefaultAioHttpClient(
        timeout=timeout, limits=limits, transport=OneReadTransport(limits=limits)
    )
