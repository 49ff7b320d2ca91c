"""WebhookSender over one shared httpx.AsyncClient, signed with the standardwebhooks package.

* Signed as Standard Webhooks says: `webhook-id`, `webhook-timestamp` (this attempt's time, in seconds)
  and `webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">`, by the package receivers
  verify with, so the two cannot drift apart.
* The connection goes only to the addresses the dispatcher checked: a network backend looks the host up
  in them instead of asking DNS again (which could answer differently: DNS rebinding). The URL, the Host
  header, TLS SNI and the certificate check all keep the host name.
* No redirects, no proxies from the environment, bounded connect/read/write timeouts; at most
  MAX_RESPONSE_BYTES of an answer are read (only its status matters).
"""

import contextvars
import email.utils
import math
from datetime import UTC, datetime

import httpcore
import httpx
from standardwebhooks import Webhook

from pixyproxy.domain.webhooks import SendResult, WebhookTarget

MAX_RESPONSE_BYTES = 64 * 1024
USER_AGENT = "PixyProxy-Webhooks/1"

# The addresses checked for the request under way in this task (it follows no redirect, so every
# connection it opens is to its own host).
_pinned: contextvars.ContextVar[tuple[str, ...]] = contextvars.ContextVar("webhook_addresses", default=())


class _PinnedBackend(httpcore.AsyncNetworkBackend):
    """Connects to the checked addresses of a host, one after the other, and never resolves a name."""

    def __init__(self) -> None:
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        addresses = _pinned.get()
        if not addresses:
            raise httpcore.ConnectError(f"{host} was not checked for this request")
        failure: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(address, port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None  # addresses is not empty
        raise failure

    async def connect_unix_socket(self, path, timeout=None, socket_options=None):
        raise httpcore.ConnectError("webhooks are not sent over Unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class _PinnedTransport(httpx.AsyncHTTPTransport):
    def __init__(self, max_connections: int) -> None:
        super().__init__(trust_env=False, limits=httpx.Limits(max_connections=max_connections))
        # httpx offers no public hook for the network backend; the pool it built is replaced by the
        # same pool over ours (httpx is pinned, and a test sends through this transport).
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            max_connections=max_connections,
            max_keepalive_connections=max_connections,
            keepalive_expiry=5.0,
            network_backend=_PinnedBackend(),
        )


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - datetime.now(UTC)).total_seconds(), 0.0)


class HttpWebhookSender:
    def __init__(
        self,
        secret: str,
        *,
        connect_timeout_seconds: float,
        timeout_seconds: float,
        max_connections: int,
    ) -> None:
        self._signer = Webhook(secret)
        self.connect_timeout_seconds = connect_timeout_seconds
        self.timeout_seconds = timeout_seconds
        self.max_connections = max_connections
        self._client: httpx.AsyncClient | None = None

    async def init(self) -> None:
        if self._client is None:
            self._client = httpx.AsyncClient(
                transport=_PinnedTransport(self.max_connections),
                timeout=httpx.Timeout(self.timeout_seconds, connect=self.connect_timeout_seconds),
                follow_redirects=False,
                trust_env=False,
                headers={"user-agent": USER_AGENT},
            )

    def sign(self, message_id: str, timestamp: datetime, payload: str) -> dict[str, str]:
        """The three Standard Webhooks headers for one attempt."""
        return {
            "webhook-id": message_id,
            "webhook-timestamp": str(math.floor(timestamp.timestamp())),
            "webhook-signature": self._signer.sign(message_id, timestamp, payload),
        }

    async def send(self, target: WebhookTarget, message_id: str, payload: str) -> SendResult:
        if self._client is None:
            await self.init()
        assert self._client is not None
        headers = {"content-type": "application/json", **self.sign(message_id, datetime.now(UTC), payload)}
        token = _pinned.set(target.addresses)
        try:
            request = self._client.build_request(
                "POST", target.url, content=payload.encode(), headers=headers
            )
            response = await self._client.send(request, stream=True)
            try:
                read = 0
                async for chunk in response.aiter_raw():
                    read += len(chunk)
                    if read >= MAX_RESPONSE_BYTES:
                        break
            finally:
                await response.aclose()
            return SendResult(
                status_code=response.status_code,
                retry_after=_retry_after(response.headers.get("retry-after")),
            )
        except httpx.TimeoutException as exc:
            return SendResult(error=f"timed out ({type(exc).__name__})")
        except httpx.HTTPError as exc:
            return SendResult(error=f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
        except OSError as exc:
            return SendResult(error=f"{type(exc).__name__}: {exc}")
        finally:
            _pinned.reset(token)

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()
