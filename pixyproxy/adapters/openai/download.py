"""Fetching an image a provider answered with a URL (a compatible server; OpenAI's GPT image models
always answer base64): at once, because provider URLs expire, within a timeout and a size cap, and
never with the API key."""

import asyncio
import logging

import httpx2

from pixyproxy.adapters.openai.failures import backoff, transport_failure
from pixyproxy.domain.errors import GeneratorError, GeneratorTimeout

log = logging.getLogger(__name__)

MAX_DOWNLOAD_BYTES = 50 * 1024 * 1024  # a 3840x2160 PNG is ~25 MB
DOWNLOAD_TIMEOUT = 60.0


class _Retryable(Exception):
    """A download answer worth another try (5xx)."""


class Downloader:
    def __init__(
        self,
        http: httpx2.AsyncClient,
        *,
        max_retries: int,
        timeout_seconds: float = DOWNLOAD_TIMEOUT,
        max_bytes: int = MAX_DOWNLOAD_BYTES,
    ) -> None:
        # The SDK's own HTTP client: the SDK adds Authorization per API request, never to this one's.
        self.http = http
        self.max_retries = max_retries
        self.timeout = timeout_seconds
        self.max_bytes = max_bytes

    async def fetch(self, url: str) -> bytes:
        """The bytes at `url`. Safe to retry: fetching an image already made costs nothing."""
        attempt = 0
        while True:
            try:
                return await self._fetch_once(url)
            except (httpx2.TransportError, _Retryable) as exc:
                if attempt >= self.max_retries:
                    log.warning("image download failed: %s", type(exc).__name__)
                    if transport_failure(exc)[1]:
                        raise GeneratorTimeout("the generated image was not downloaded in time") from None
                    raise GeneratorError("the generated image could not be downloaded") from None
            attempt += 1
            await asyncio.sleep(backoff(attempt - 1))

    async def _fetch_once(self, url: str) -> bytes:
        async with self.http.stream("GET", url, timeout=self.timeout) as response:
            if response.status_code >= 500:
                raise _Retryable()
            if response.status_code != 200:
                raise GeneratorError(f"the generated image's URL answered HTTP {response.status_code}")
            declared = response.headers.get("content-length")
            if declared and declared.isdigit() and int(declared) > self.max_bytes:
                raise GeneratorError("the generated image is larger than this server accepts")
            chunks, total = [], 0
            async for chunk in response.aiter_bytes():
                total += len(chunk)
                if total > self.max_bytes:
                    raise GeneratorError("the generated image is larger than this server accepts")
                chunks.append(chunk)
            return b"".join(chunks)
