"""What a failed call to the Images API means, and whether to try again.

Money: a retry can pay twice for one image, so the SDK's own retries are off (it also retries read
timeouts, 408 and 409, after which the provider may have generated and billed) and only these are
retried, boundedly: a connection that was never established, a 429 asking for a short pause, and
500/502/503 (no image in those answers). A read timeout, a connection dropped after the request went out
and 504 (a gateway gave up; the provider may still be generating) are never retried.
"""

import asyncio
import email.utils
import logging
import random
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import aiohttp
import httpx2
import openai

from pixyproxy.domain.errors import (
    ContentPolicyViolation,
    GeneratorError,
    GeneratorModelUnavailable,
    GeneratorRateLimited,
    GeneratorTimeout,
    ImageException,
    InvalidImageRequest,
)

log = logging.getLogger(__name__)

MAX_RETRY_WAIT = 10.0  # a 429 asking for a longer pause is answered 503 + Retry-After, not waited out
INITIAL_BACKOFF, MAX_BACKOFF = 0.5, 4.0
CONTENT_POLICY_CODES = {"content_policy_violation", "moderation_blocked", "content_filter"}  # last: Azure
_KEY_PATTERN = re.compile(r"\b(sk|key|rk)-[A-Za-z0-9_*.\-]{4,}")

T = TypeVar("T")


class Redactor:
    """Removes the API key (and anything shaped like one) from provider text before it is logged or sent."""

    def __init__(self, *secrets: str | None) -> None:
        self.secrets = [s for s in secrets if s and len(s) >= 6]

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "[redacted]")
        return _KEY_PATTERN.sub("[redacted]", text)[:500]


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int
    max_retry_wait: float = MAX_RETRY_WAIT

    def status_wait(self, exc: openai.APIStatusError, attempt: int) -> float | None:
        """Seconds to wait before retrying, or None when this answer must not be retried."""
        status = exc.status_code
        if attempt >= self.max_retries or exc.response.headers.get("x-should-retry") == "false":
            return None
        if status == 429 and exc.code != "insufficient_quota":
            retry_after = retry_after_seconds(exc.response.headers)
            if retry_after is None:
                return backoff(attempt)
            return retry_after if retry_after <= self.max_retry_wait else None
        if status in (500, 502, 503):  # refused before any image: nothing was billed
            retry_after = retry_after_seconds(exc.response.headers)
            if retry_after is not None and retry_after <= self.max_retry_wait:
                return retry_after
            return backoff(attempt)
        return None


async def with_retries(
    call: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    status_error: Callable[[openai.APIStatusError], ImageException],
) -> T:
    """Run `call` (one request to the provider), retrying what cannot have been billed; every failure
    leaves as a domain exception."""
    attempt = 0
    while True:
        try:
            return await call()
        except openai.APIStatusError as exc:
            wait = policy.status_wait(exc, attempt)
            if wait is None:
                raise status_error(exc) from None
            why = f"HTTP {exc.status_code}"
        except openai.APIConnectionError as exc:  # APITimeoutError included
            never_sent, _ = transport_failure(exc)
            if attempt >= policy.max_retries or not never_sent:
                raise connection_error(exc) from None
            wait, why = backoff(attempt), f"connection failed ({root(exc)})"
        except openai.OpenAIError as exc:
            raise unreadable(exc) from None
        attempt += 1
        log.warning("generator %s; retry %d of %d in %.1fs", why, attempt, policy.max_retries, wait)
        await asyncio.sleep(wait)


def connection_error(exc: BaseException) -> GeneratorError:
    never_sent, timed_out = transport_failure(exc)
    log.warning("generator connection failed: %s", root(exc))
    if timed_out:
        return GeneratorTimeout()
    if never_sent:  # nothing was sent, so nothing billed: routing may try the next deployment
        return GeneratorError("the image generator could not be reached", failover=True)
    return GeneratorError("the connection to the image generator broke before it answered")


def unreadable(exc: BaseException) -> GeneratorError:
    log.warning("generator answer not understood: %s", type(exc).__name__)
    return GeneratorError("the image generator's answer could not be read")


def status_error(
    exc: openai.APIStatusError, *, model: str, model_named: bool, redact: Callable[[str], str]
) -> ImageException:
    """The domain exception for an HTTP error answer. model_named: the client asked for `model` (a
    refusal of it is the request's fault), rather than it coming from PIXYPROXY_OPENAI_MODEL."""
    status, code, message = exc.status_code, exc.code, redact(provider_message(exc))
    request_id = exc.response.headers.get("x-request-id") or "-"
    log.warning(
        "generator answered HTTP %d (code %s, provider request %s): %s", status, code, request_id, message
    )
    if status == 401:  # never repeat the provider's text: it quotes part of the key
        return GeneratorError("the image generator refused our credentials (check OPENAI_API_KEY)")
    if status == 403:
        return GeneratorError("the image generator refused access to this model or account")
    if status == 429:
        if code == "insufficient_quota":
            return GeneratorError("the image generator account has run out of quota")
        return GeneratorRateLimited(
            "the image generator is rate limiting us; try again later",
            retry_after=retry_after_seconds(exc.response.headers),
        )
    if status == 400 and is_content_policy(exc) and (categories := filtered_categories(exc)):
        return ContentPolicyViolation(
            f"the image generator's content filter refused the prompt: {', '.join(categories)}",
            categories=categories,
        )
    if status == 400 and is_content_policy(exc):
        return ContentPolicyViolation(
            f"the image generator refused the prompt under its content policy: {message}"
            if message
            else "the image generator refused the prompt under its content policy"
        )
    if status == 400 and exc.type == "invalid_request_error":
        param = exc.param if isinstance(exc.param, str) and exc.param else None
        where = f"{param}: " if param else ""
        return InvalidImageRequest(f"{where}the image generator refused it: {message}", param=param)
    if status == 404 and code == "model_not_found":
        if model_named:
            return InvalidImageRequest(f"model: the image generator has no model {model!r}: {message}")
        return GeneratorModelUnavailable(
            f"the configured model {model!r} (PIXYPROXY_OPENAI_MODEL) is not offered by the image "
            f"generator: {message}"
        )
    if status == 404:
        return GeneratorError(f"the image generator answered 404 for {model!r} (is OPENAI_BASE_URL right?)")
    if status == 408:
        return GeneratorTimeout()
    if status >= 500:
        return GeneratorError(f"the image generator failed (HTTP {status})", failover=True)
    return GeneratorError(f"the image generator refused the request (HTTP {status}): {message}")


def backoff(attempt: int) -> float:
    return min(INITIAL_BACKOFF * 2**attempt, MAX_BACKOFF) * (1 - 0.25 * random.random())


def retry_after_seconds(headers: Any) -> float | None:
    """Retry-After (seconds or an HTTP date) or retry-after-ms, as seconds; None when absent or unreadable."""
    milliseconds = headers.get("retry-after-ms")
    if milliseconds:
        try:
            return max(0.0, float(milliseconds) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def provider_message(exc: openai.APIError) -> str:
    body = exc.body
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return body["message"]
    return ""


def filtered_categories(exc: openai.APIError) -> list[str]:
    """The categories an Azure content filter flagged (its error's inner error), each with its severity."""
    body = exc.body if isinstance(exc.body, dict) else {}
    inner = body.get("innererror") or body.get("inner_error") or {}
    results = inner.get("content_filter_result") or inner.get("content_filter_results") or {}
    if not isinstance(results, dict):
        return []
    return [
        f"{name} ({verdict.get('severity', 'filtered')})"
        for name, verdict in results.items()
        if isinstance(verdict, dict) and verdict.get("filtered")
    ]


def is_content_policy(exc: openai.APIError) -> bool:
    code = getattr(exc, "code", None)
    if code in CONTENT_POLICY_CODES:
        return True
    return getattr(exc, "type", None) == "image_generation_user_error" and "safety" in (
        provider_message(exc).lower()
    )


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def root(exc: BaseException) -> str:
    return type(_chain(exc)[-1]).__name__


def transport_failure(exc: BaseException) -> tuple[bool, bool]:
    """(never_sent, timed_out). never_sent only when the request provably never reached the provider:
    the connection was never made. Decided on the root error, since the SDK's aiohttp bridge maps even a
    refused or dropped connection to httpx2.ConnectTimeout."""
    chain = _chain(exc)
    from_aiohttp = next((e for e in chain if isinstance(e, aiohttp.ClientError)), None)
    if from_aiohttp is not None:
        never_sent = isinstance(from_aiohttp, aiohttp.ClientConnectorError | aiohttp.ConnectionTimeoutError)
        return never_sent, isinstance(from_aiohttp, aiohttp.ServerTimeoutError)
    never_sent = any(
        isinstance(e, httpx2.ConnectError | httpx2.ConnectTimeout | httpx2.PoolTimeout) for e in chain
    )
    timed_out = isinstance(exc, openai.APITimeoutError) or any(
        isinstance(e, httpx2.TimeoutException) for e in chain
    )
    return never_sent, timed_out
