"""What the providers spoken over plain HTTP (bfl, a1111, comfyui) share: one aiohttp session per
deployment with its own timeouts, JSON calls whose transport failures become the generator errors routing
understands, and bounded downloads of what a provider made."""

import json
import logging
from typing import Any

import aiohttp

from pixyproxy.adapters.openai.failures import retry_after_seconds
from pixyproxy.adapters.providers.base import Provider, unavailable
from pixyproxy.domain.errors import GeneratorError, GeneratorRateLimited, GeneratorTimeout, ImageException

log = logging.getLogger(__name__)

MAX_IMAGE_BYTES = 50 * 1024 * 1024


class HttpProvider(Provider):
    """A session made lazily (on the running loop) and closed with the adapter."""

    def __init__(self, *, timeout_seconds: float, connect_timeout_seconds: float = 10.0) -> None:
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds, connect=connect_timeout_seconds)
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session

    async def request_json(
        self, method: str, url: str, *, ok: tuple[int, ...] = (200,), **kwargs: Any
    ) -> tuple[int, Any, Any]:
        """(status, parsed body or None, headers). 429 and 5xx become routing's errors; other statuses
        not in `ok` are returned for the adapter to read."""
        try:
            async with self.session.request(method, url, **kwargs) as response:
                status, headers = response.status, response.headers
                text = await response.text()
        except (TimeoutError, aiohttp.ServerTimeoutError):
            raise GeneratorTimeout(f"{self.label} did not answer in time") from None
        except aiohttp.ClientConnectorError:
            log.warning("%s could not be reached at %s", self.label, url.split("?")[0])
            raise unavailable(f"{self.label} could not be reached") from None
        except aiohttp.ClientError as exc:
            log.warning("%s call failed: %s", self.label, type(exc).__name__)
            raise unavailable(f"the connection to {self.label} broke before it answered") from None
        try:
            body = json.loads(text) if text else None
        except ValueError:
            body = None
        if status == 429:
            raise GeneratorRateLimited(
                f"{self.label} is rate limiting us; try again later", retry_after=retry_after_seconds(headers)
            )
        if status >= 500:
            log.warning("%s answered HTTP %s", self.label, status)
            raise unavailable(f"{self.label} failed (HTTP {status})")
        return status, body, headers

    async def download(self, url: str, **kwargs: Any) -> bytes:
        """The bytes at `url`, bounded in size; fetched at once because providers' URLs expire."""
        try:
            async with self.session.get(url, **kwargs) as response:
                if response.status != 200:
                    raise GeneratorError(f"the image {self.label} made answered HTTP {response.status}")
                chunks, total = [], 0
                async for chunk in response.content.iter_chunked(256 * 1024):
                    total += len(chunk)
                    if total > MAX_IMAGE_BYTES:
                        raise GeneratorError(
                            f"the image {self.label} made is larger than this server accepts"
                        )
                    chunks.append(chunk)
                return b"".join(chunks)
        except (TimeoutError, aiohttp.ServerTimeoutError):
            raise GeneratorTimeout(f"the image {self.label} made was not downloaded in time") from None
        except aiohttp.ClientError:
            raise GeneratorError(f"the image {self.label} made could not be downloaded") from None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


def refused(message: str) -> ImageException:
    """A provider's own 4xx about the request: our configuration or the prompt, never failed over."""
    return GeneratorError(message)
