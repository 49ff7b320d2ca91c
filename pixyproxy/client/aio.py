"""AsyncPixyProxyClient: the asyncio client, the same API as PixyProxyClient with `await`."""

import asyncio
import os
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx

from pixyproxy.client import _base
from pixyproxy.client._base import GuidLike, RetryPolicy
from pixyproxy.client.errors import error_from_response
from pixyproxy.client.models import ContentUrl, ImageDetail


class AsyncPixyProxyClient:
    """A PixyProxy server, over HTTP, for asyncio code.

        async with AsyncPixyProxyClient("http://pixyproxy:8001") as client:
            image = await client.generate("a lighthouse at dusk, watercolour")
            async for older in client.list():
                ...

    Options as PixyProxyClient. Many generations can be awaited at once on one client.
    """

    def __init__(
        self,
        base_url: str | None = None,
        *,
        api_key: str | None = None,
        timeout: httpx.Timeout | float | None = None,
        generate_timeout: httpx.Timeout | float | None = None,
        retry: RetryPolicy | None = None,
        headers: dict[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        options = _base.client_options(base_url, api_key, timeout, headers)
        self.base_url: str = options["base_url"]
        self.generate_timeout = _base.GENERATE_TIMEOUT if generate_timeout is None else generate_timeout
        self.retry = retry or RetryPolicy()
        self._http = httpx.AsyncClient(transport=transport, **options)

    async def __aenter__(self) -> "AsyncPixyProxyClient":
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._http.aclose()

    def __repr__(self) -> str:
        return f"AsyncPixyProxyClient({self.base_url!r})"

    # -- the API --------------------------------------------------------------------------------

    async def generate(
        self,
        prompt: str,
        *,
        model: str | None = None,
        size: str | None = None,
        quality: str | None = None,
        background: str | None = None,
        output_format: str | None = None,
        output_compression: int | None = None,
        moderation: str | None = None,
        idempotency_key: str | None = None,
    ) -> ImageDetail:
        """Generate an image and store it; see PixyProxyClient.generate."""
        body = _base.generation_body(
            prompt,
            model=model,
            size=size,
            quality=quality,
            background=background,
            output_format=output_format,
            output_compression=output_compression,
            moderation=moderation,
        )
        return await self._generation("/image/", body, idempotency_key)

    async def edit(
        self,
        guid: GuidLike,
        prompt: str,
        *,
        mask: GuidLike | None = None,
        references: list[GuidLike] | None = None,
        model: str | None = None,
        size: str | None = None,
        quality: str | None = None,
        background: str | None = None,
        output_format: str | None = None,
        output_compression: int | None = None,
        idempotency_key: str | None = None,
    ) -> ImageDetail:
        """A new image made from a stored one; see PixyProxyClient.edit."""
        body = _base.edit_body(
            prompt,
            mask,
            references,
            model=model,
            size=size,
            quality=quality,
            background=background,
            output_format=output_format,
            output_compression=output_compression,
        )
        return await self._generation(_base.guid_path(guid, "/edits"), body, idempotency_key)

    async def _generation(self, path: str, body: dict[str, Any], idempotency_key: str | None) -> ImageDetail:
        key = idempotency_key or _base.new_idempotency_key()
        response = await self._send(
            "POST",
            path,
            json=body,
            headers={"Idempotency-Key": key},
            timeout=self.generate_timeout,
            generation=True,
        )
        return _base.parse_image(response)

    async def get(self, guid: GuidLike) -> ImageDetail:
        return _base.parse_image(await self._send("GET", _base.guid_path(guid)))

    async def list(self, *, page_size: int = 100) -> AsyncIterator[ImageDetail]:
        """Every image, newest first, fetched a page at a time by following the `Link` header."""
        params: dict[str, str] | None = _base.list_params(page_size)
        while params is not None:
            response = await self._send("GET", "/image/", params=params)
            for image in _base.parse_images(response):
                yield image
            params = _base.next_page_params(response)

    async def content(self, guid: GuidLike) -> bytes:
        return (await self._send("GET", _base.guid_path(guid, "/content"))).content

    async def download(self, guid: GuidLike, path: str | os.PathLike[str]) -> Path:
        """Stream the PNG to `path` (written to a temporary file first, then renamed into place)."""
        target = Path(path)
        response = await self._send("GET", _base.guid_path(guid, "/content"), stream=True)
        fd, partial = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as out:
                async for chunk in response.aiter_bytes():
                    out.write(chunk)
            os.replace(partial, target)
        except BaseException:
            Path(partial).unlink(missing_ok=True)
            raise
        finally:
            await response.aclose()
        return target

    async def url(self, guid: GuidLike) -> ContentUrl:
        return _base.parse_url(await self._send("GET", _base.guid_path(guid, "/url")))

    # -- plumbing -------------------------------------------------------------------------------

    async def _send(
        self, method: str, path: str, *, stream: bool = False, generation: bool = False, **kwargs: Any
    ) -> httpx.Response:
        attempt = 0
        while True:
            request = self._http.build_request(method, path, **kwargs)
            try:
                response = await self._http.send(request, stream=stream)
            except httpx.TransportError as exc:
                wait = self.retry.wait_after_transport_error(attempt)
                if wait is None:
                    raise _base.transport_error(exc, str(request.url)) from exc
            else:
                if response.is_success:
                    return response
                if stream:
                    await response.aread()
                    await response.aclose()
                error = error_from_response(response)
                wait = self.retry.wait_after_error(attempt, error, generation=generation)
                if wait is None:
                    raise error
            await asyncio.sleep(wait)
            attempt += 1
