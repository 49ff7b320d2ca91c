"""Webhook URLs and events: which URLs a job may call back, and what it sends them.

`validate_webhook_url` is pure (parsing and ipaddress checks on literal hosts); `check_webhook_url`
(webhook_urls.py) adds the DNS answer, through a HostResolver port, so a name that points into the
private network is refused as its literal address would be. Both run at submit (a 422) and again at
every delivery attempt, since a name may resolve elsewhere by then.
"""

import base64
import binascii
import ipaddress
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import SplitResult, urlsplit

from pixyproxy.domain.embedded_ipv4 import embedded_ipv4
from pixyproxy.domain.errors import InvalidWebhookUrl

MAX_WEBHOOK_URL_LENGTH = 2048
ALLOWED_SCHEMES = ("http", "https")

# Event types, one per way a job ends.
EVENT_TYPES = {
    "succeeded": "image.job.succeeded",
    "failed": "image.job.failed",
    "canceled": "image.job.canceled",
}

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class WebhookTarget:
    """A webhook URL that passed the checks; `addresses` are the ones checked (empty until resolved)."""

    url: str
    scheme: str
    host: str
    port: int
    addresses: tuple[str, ...] = ()


def event_type(status: str) -> str:
    """The webhook event type for a job that ended in `status`."""
    try:
        return EVENT_TYPES[status]
    except KeyError:
        raise ValueError(f"a job in status {status!r} has not ended") from None


def is_public_address(address: IPAddress) -> bool:
    """False for anything that is not a globally routable unicast address: private, loopback,
    link-local (cloud metadata at 169.254.169.254), shared (100.64/10), multicast, reserved, unspecified."""
    if isinstance(address, ipaddress.IPv6Address):
        # An IPv6 form that carries IPv4 is judged by every IPv4 address it may reach.
        embedded = embedded_ipv4(address)
        if embedded:
            return all(is_public_address(inside) for inside in embedded)
    if address.is_multicast or address.is_unspecified or address.is_loopback or address.is_link_local:
        return False
    return address.is_global


def _literal_address(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None


def loggable_url(url: str) -> str:
    """The URL for a log line: scheme, host, port and path; never its query or fragment, where receivers
    often put a token."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        netloc = f"[{host}]" if ":" in host else host
        if parts.port is not None:
            netloc += f":{parts.port}"
    except ValueError:
        return "(an unreadable URL)"
    return f"{parts.scheme}://{netloc}{parts.path}"


def _split(url: str) -> SplitResult:
    if not isinstance(url, str) or not url:
        raise InvalidWebhookUrl("webhook_url: must be an http or https URL")
    if len(url) > MAX_WEBHOOK_URL_LENGTH:
        raise InvalidWebhookUrl(f"webhook_url: at most {MAX_WEBHOOK_URL_LENGTH} characters")
    if any(ord(c) <= 0x20 or ord(c) == 0x7F for c in url):
        raise InvalidWebhookUrl("webhook_url: must not contain spaces or control characters")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a port out of range or not a number
    except ValueError as exc:
        raise InvalidWebhookUrl(f"webhook_url: not a valid URL ({exc})") from None
    return parts


def validate_webhook_url(url: str, allow_private: bool = False) -> WebhookTarget:
    """Check a webhook URL without any I/O: http or https, a host, no credentials, and, when the host
    is an IP address, a public one unless `allow_private`. Raises InvalidWebhookUrl (a 422)."""
    parts = _split(url)
    scheme = parts.scheme.lower()
    if scheme not in ALLOWED_SCHEMES:
        raise InvalidWebhookUrl("webhook_url: only http and https URLs are accepted")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise InvalidWebhookUrl("webhook_url: the URL has no host")
    if parts.username is not None or parts.password is not None:
        raise InvalidWebhookUrl("webhook_url: credentials in the URL are not accepted")
    port = parts.port or (443 if scheme == "https" else 80)
    literal = _literal_address(host)
    if literal is not None and not allow_private and not is_public_address(literal):
        raise InvalidWebhookUrl(
            "webhook_url: private, loopback and link-local addresses are refused "
            "(PIXYPROXY_WEBHOOK_ALLOW_PRIVATE=true allows them)"
        )
    named_localhost = host.lower() == "localhost" or host.lower().endswith(".localhost")
    if literal is None and named_localhost and not allow_private:
        raise InvalidWebhookUrl(
            "webhook_url: localhost is refused (PIXYPROXY_WEBHOOK_ALLOW_PRIVATE=true allows it)"
        )
    addresses = (str(literal),) if literal is not None else ()
    return WebhookTarget(url=url, scheme=scheme, host=host, port=port, addresses=addresses)


def check_addresses(host: str, addresses: list[str], allow_private: bool) -> tuple[str, ...]:
    """Refuse a host when any address it resolves to is not public (a name with one private answer
    among public ones could be steered to it)."""
    if not addresses:
        raise InvalidWebhookUrl(f"webhook_url: {host} does not resolve")
    checked = []
    for text in addresses:
        address = _literal_address(text)
        if address is None:
            raise InvalidWebhookUrl(f"webhook_url: {host} resolved to something that is not an address")
        if not allow_private and not is_public_address(address):
            raise InvalidWebhookUrl(
                f"webhook_url: {host} resolves to a private, loopback or link-local address "
                "(PIXYPROXY_WEBHOOK_ALLOW_PRIVATE=true allows it)"
            )
        checked.append(str(address))
    return tuple(checked)


# -- deliveries -------------------------------------------------------------------------------------

# Defaults written once: settings.py takes its defaults from these. 60 s doubling, capped at an hour:
# attempts at 0, 1, 3, 7, 15, 31, 63 and 123 minutes, so the eighth and last comes about two hours in.
DEFAULT_MAX_ATTEMPTS = 8
DEFAULT_RETRY_BASE_SECONDS = 60.0
DEFAULT_RETRY_MAX_DELAY_SECONDS = 3600.0
DEFAULT_RETRY_JITTER = 0.2
DEFAULT_TIMEOUT_SECONDS = 10.0

PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"
MAX_ERROR_LENGTH = 500


@dataclass(frozen=True)
class WebhookDelivery:
    """One webhook to send (a row of the outbox). `id` is the webhook-id header, the same on every
    attempt, so a receiver can drop repeats; `payload` is the exact body, fixed when the job ended."""

    id: str
    job_id: str
    url: str
    event_type: str
    payload: str
    created_at: datetime
    next_attempt_at: datetime
    status: str = PENDING
    attempts: int = 0
    last_status_code: int | None = None
    last_error: str | None = None
    delivered_at: datetime | None = None
    tenant: str | None = None  # the job's API key name, for fair shares of the delivery slots


def new_delivery(
    job_id: str, url: str, status: str, job: Mapping[str, Any] | str, now: datetime
) -> WebhookDelivery:
    """The delivery announcing that job `job_id` ended in `status`; `job` is the job as the API renders
    it (a JSON-ready mapping, or its JSON text). Due at once."""
    data = job if isinstance(job, str) else json.dumps(job, separators=(",", ":"), ensure_ascii=False)
    kind = event_type(status)
    payload = f'{{"type":{json.dumps(kind)},"data":{data}}}'
    return WebhookDelivery(
        id=f"msg_{uuid.uuid4().hex}",
        job_id=str(job_id),
        url=url,
        event_type=kind,
        payload=payload,
        created_at=now,
        next_attempt_at=now,
    )


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter: the wait after attempt k (1-based) is base x 2^(k-1), capped
    at max_delay, then spread by +-jitter so receivers that fail together are not retried together."""

    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    base_seconds: float = DEFAULT_RETRY_BASE_SECONDS
    max_delay_seconds: float = DEFAULT_RETRY_MAX_DELAY_SECONDS
    jitter: float = DEFAULT_RETRY_JITTER

    def delay(self, attempts_made: int, retry_after: float | None = None, rand: float = 0.5) -> float:
        """Seconds to wait before the next attempt; `rand` in [0, 1) (0.5: no jitter). A receiver's
        Retry-After is honoured when longer, up to max_delay."""
        exponent = min(max(attempts_made - 1, 0), 60)
        backoff = min(self.base_seconds * 2**exponent, self.max_delay_seconds)
        backoff *= 1 + self.jitter * (2 * rand - 1)
        if retry_after is not None:
            backoff = max(backoff, min(retry_after, self.max_delay_seconds))
        return float(max(backoff, 0.0))


@dataclass(frozen=True)
class SendResult:
    """What one HTTP attempt got: a status code, or an error (timeout, refused, reset) and no code."""

    status_code: int | None = None
    error: str | None = None
    retry_after: float | None = None


# Statuses worth another try besides 5xx: the receiver timed out or asked us to slow down.
RETRIED_STATUSES = frozenset({408, 429})


def should_retry(result: SendResult) -> bool | None:
    """None: delivered (2xx). True: try again (5xx, 408, 429, timeouts, refused or broken connections).
    False: give up (other 4xx; 3xx, since redirects are not followed: they could lead anywhere)."""
    code = result.status_code
    if code is None:
        return True
    if 200 <= code < 300:
        return None
    return code >= 500 or code in RETRIED_STATUSES


def describe_result(result: SendResult) -> str:
    text = f"HTTP {result.status_code}" if result.status_code is not None else (result.error or "no answer")
    return text[:MAX_ERROR_LENGTH]


SECRET_PREFIX = "whsec_"
SECRET_HINT = "python -c \"import base64,os; print('whsec_' + base64.b64encode(os.urandom(32)).decode())\""


def valid_secret(secret: str) -> bool:
    """A Standard Webhooks secret: whsec_ and the base64 of at least 16 random bytes."""
    if not secret.startswith(SECRET_PREFIX):
        return False
    try:
        key = base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
    except (ValueError, binascii.Error):
        return False
    return len(key) >= 16
