"""What the sync and async clients share: configuration, request building, retries, parsing."""

import os
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote, urlsplit
from uuid import UUID

import httpx

from pixyproxy import __version__
from pixyproxy.client.errors import (
    APIError,
    GeneratorRateLimited,
    PixyProxyConnectionError,
    PixyProxyTimeout,
    RateLimited,
    ServiceUnavailable,
)
from pixyproxy.client.models import (
    ContentUrl,
    DoneEvent,
    ImageDetail,
    Job,
    JobEvent,
    PartialImageEvent,
    ProgressEvent,
    StatusEvent,
    UsageReport,
)

DEFAULT_URL = "http://127.0.0.1:8001"
API_KEY_ENV = "PIXYPROXY_API_KEY"
URL_ENV = "PIXYPROXY_URL"
# Reads of details, lists and bytes.
DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=10.0)
# A generation waits on the provider: image models often take over a minute, and the server itself allows
# the provider 180 s per attempt. 300 s read keeps the client from giving up before the server does.
GENERATE_TIMEOUT = httpx.Timeout(30.0, connect=10.0, read=300.0)

GuidLike = str | UUID | ImageDetail


@dataclass(frozen=True)
class RetryPolicy:
    """When the client tries a call again by itself.

    Every call it makes is safe to repeat: reads are reads, and a generation is sent with the same
    Idempotency-Key on every attempt, so the server returns the first image instead of making another.
    Retried: connection failures and timeouts, 429, and 503, honouring Retry-After up to `max_wait`
    seconds. A generation is retried on a 503 only when the provider turned it away
    (`generator_rate_limited`): another 503 may come after an image was paid for and then not stored,
    and a retry would pay again. Never retried: 502 and 504 (the provider failed or took too long; try
    again yourself if you want to pay for another attempt) and every 4xx but 429.
    """

    max_retries: int = 2
    backoff: float = 0.5  # seconds before the first retry; doubles each time
    max_wait: float = 30.0  # a Retry-After longer than this is raised to the caller instead

    def wait_after_transport_error(self, attempt: int) -> float | None:
        return self._backoff(attempt) if attempt < self.max_retries else None

    def wait_after_error(self, attempt: int, error: APIError, *, generation: bool = False) -> float | None:
        if attempt >= self.max_retries or not isinstance(error, ServiceUnavailable | RateLimited):
            return None
        if (
            generation
            and isinstance(error, ServiceUnavailable)
            and not isinstance(error, GeneratorRateLimited)
        ):
            return None
        if error.retry_after is None:
            return self._backoff(attempt)
        return error.retry_after if error.retry_after <= self.max_wait else None

    def _backoff(self, attempt: int) -> float:
        return min(self.backoff * (2**attempt), self.max_wait)


def new_idempotency_key() -> str:
    return str(uuid.uuid4())


def guid_path(guid: GuidLike, suffix: str = "") -> str:
    value = str(guid.guid if isinstance(guid, ImageDetail) else guid)
    return f"/image/{quote(value, safe='')}{suffix}"


def client_options(
    base_url: str | None,
    api_key: str | None,
    timeout: httpx.Timeout | float | None,
    headers: dict[str, str] | None,
) -> dict[str, Any]:
    """Keyword arguments for httpx.Client / httpx.AsyncClient."""
    api_key = api_key if api_key is not None else os.environ.get(API_KEY_ENV)
    all_headers = {"User-Agent": f"pixyproxy-client/{__version__} httpx/{httpx.__version__}"}
    if api_key:
        all_headers["Authorization"] = f"Bearer {api_key}"
    all_headers.update(headers or {})
    return {
        "base_url": (base_url or os.environ.get(URL_ENV) or DEFAULT_URL).rstrip("/"),
        "headers": all_headers,
        "timeout": DEFAULT_TIMEOUT if timeout is None else timeout,
        "follow_redirects": False,
    }


# What generate() and edit() may ask besides the prompt; None leaves the server's default.
OPTIONS = (
    "model",
    "size",
    "quality",
    "background",
    "output_format",
    "output_compression",
    "moderation",
    "negative_prompt",
)


def generation_body(prompt: str, **options: Any) -> dict[str, Any]:
    unknown = set(options) - set(OPTIONS)
    if unknown:
        raise TypeError(f"unknown option(s): {', '.join(sorted(unknown))}")
    body = {"prompt": prompt, **options}
    return {k: v for k, v in body.items() if v is not None}


def edit_body(
    prompt: str, mask: GuidLike | None, references: Sequence[GuidLike] | None, **options: Any
) -> dict[str, Any]:
    body = generation_body(prompt, **options)
    if mask is not None:
        body["mask_guid"] = guid_text(mask)
    if references:
        body["reference_guids"] = [guid_text(r) for r in references]
    return body


def guid_text(guid: GuidLike) -> str:
    return str(guid.guid if isinstance(guid, ImageDetail) else guid)


def list_params(
    page_size: int,
    q: str | None = None,
    model: str | None = None,
    created_after: datetime | str | None = None,
    created_before: datetime | str | None = None,
) -> dict[str, str]:
    params = {"limit": str(page_size)}
    filters = {
        "q": q,
        "model": model,
        "created_after": instant_text("created_after", created_after),
        "created_before": instant_text("created_before", created_before),
    }
    params.update({name: value for name, value in filters.items() if value is not None})
    return params


def instant_text(name: str, value: date | str | None) -> str | None:
    """RFC 3339 text for the server: a datetime must say its time zone (a naive one is refused rather
    than guessed), a date is a whole UTC day, text is sent as given (the server checks it)."""
    if isinstance(value, datetime) and value.utcoffset() is None:
        raise ValueError(f"{name}: a datetime needs a time zone, e.g. datetime.now(UTC)")
    return value.isoformat() if isinstance(value, date) else value


def variant_params(width: int | None, format: str | None) -> dict[str, str]:
    """The query of a variant; empty (the original) when neither is given."""
    params = {"width": None if width is None else str(width), "format": format}
    return {name: value for name, value in params.items() if value is not None}


def usage_params(since: date | str | None, until: date | str | None) -> dict[str, str]:
    params = {"since": instant_text("since", since), "until": instant_text("until", until)}
    return {name: value for name, value in params.items() if value is not None}


def open_partial(target: Path) -> tuple[Path, IO[bytes]]:
    """A new temporary file beside `target`, opened for writing. Created with mode 0o666 so that the
    user's umask decides the permissions, as for any file a program saves (mkstemp would force 0600)."""
    partial = target.with_name(f".{target.name}.{uuid.uuid4().hex[:12]}.part")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    return partial, os.fdopen(fd, "wb")


def next_page_params(response: httpx.Response) -> dict[str, str] | None:
    """The query of the `Link: <...>; rel="next"` URL, or None on the last page.

    Only the query is taken and sent to this client's own base URL: behind a proxy or load balancer the
    server may build the link with a host or path prefix that is not the one the client reaches.
    """
    link = response.links.get("next", {}).get("url")
    if not link:
        return None
    query = urlsplit(link).query
    return dict(httpx.QueryParams(query))


def parse_images(response: httpx.Response) -> list[ImageDetail]:
    return [ImageDetail.model_validate(item) for item in response.json()]


def parse_image(response: httpx.Response) -> ImageDetail:
    return ImageDetail.model_validate(response.json())


def parse_url(response: httpx.Response) -> ContentUrl:
    return ContentUrl.model_validate(response.json())


def parse_usage(response: httpx.Response) -> UsageReport:
    return UsageReport.model_validate(response.json())


def transport_error(exc: httpx.TransportError, url: str) -> PixyProxyConnectionError:
    if isinstance(exc, httpx.TimeoutException):
        return PixyProxyTimeout(f"no answer from {url} in time ({type(exc).__name__})")
    return PixyProxyConnectionError(f"cannot reach {url}: {exc or type(exc).__name__}")


# -- generation jobs ---------------------------------------------------------------------------------

JobLike = str | UUID | Job
# The events stream is quiet between changes; the server sends a comment line every 15 s.
EVENTS_TIMEOUT = httpx.Timeout(30.0, connect=10.0, read=60.0)


def job_timeout(job: JobLike, timeout: float | None) -> PixyProxyTimeout:
    return PixyProxyTimeout(f"job {job_id_text(job)} had not ended after {timeout} s")


def check_deadline(job: JobLike, deadline: float | None) -> None:
    """Raise PixyProxyTimeout once `deadline` (time.monotonic()) has passed."""
    if deadline is not None and time.monotonic() >= deadline:
        raise PixyProxyTimeout(f"job {job_id_text(job)} had not ended by the wait's timeout")


def events_timeout(job: JobLike, deadline: float | None) -> httpx.Timeout:
    """The timeouts of one events connection: with a deadline, no read waits past it, so even a stream
    that sends nothing ends in time (a blocking read cannot be interrupted otherwise)."""
    if deadline is None:
        return EVENTS_TIMEOUT
    check_deadline(job, deadline)
    left = deadline - time.monotonic()
    return httpx.Timeout(min(30.0, left), connect=min(10.0, left), read=min(60.0, left))


def read_outlasts_deadline(line: str, timeout: httpx.Timeout, deadline: float | None) -> bool:
    """After a keep-alive comment, whether the connection's next read could wait past the deadline: the
    server pings every 15 s whatever happens, so a read timeout set when the stream opened would
    otherwise let a quiet job run over by up to a ping interval."""
    if deadline is None or not line.startswith(":") or timeout.read is None:
        return False
    return time.monotonic() + timeout.read > deadline


def job_body(
    prompt: str,
    n: int | None,
    webhook_url: str | None,
    partial_images: int | None,
    **options: Any,
) -> dict[str, Any]:
    body = generation_body(prompt, **options)
    extra = {"n": n, "webhook_url": webhook_url, "partial_images": partial_images}
    body.update({k: v for k, v in extra.items() if v is not None})
    return body


def job_id_text(job: JobLike) -> str:
    return str(job.id if isinstance(job, Job) else job)


def job_path(job: JobLike, suffix: str = "") -> str:
    return f"/image/jobs/{quote(job_id_text(job), safe='')}{suffix}"


def job_list_params(page_size: int, status: str | None) -> dict[str, str]:
    params = {"limit": str(page_size)}
    if status is not None:
        params["status"] = status
    return params


def parse_job(response: httpx.Response) -> Job:
    return Job.model_validate(response.json())


def parse_jobs(response: httpx.Response) -> list[Job]:
    return [Job.model_validate(item) for item in response.json()]


class SSEParser:
    """Server-sent events from lines (https://html.spec.whatwg.org/multipage/server-sent-events.html):
    `event:` and `data:` fields up to a blank line; comments (`:` lines, the keep-alive pings) skipped."""

    def __init__(self) -> None:
        self._event = ""
        self._data: list[str] = []

    def feed(self, line: str) -> tuple[str, str] | None:
        """One line (without its end); the (event, data) it completes, if any."""
        line = line.rstrip("\r\n")
        if not line:
            if not self._data:
                self._event = ""
                return None
            event, data = self._event or "message", "\n".join(self._data)
            self._event, self._data = "", []
            return event, data
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        return None


def job_event(event: str, data: str) -> JobEvent | None:
    """The typed event, or None for an event this client does not know (a newer server's)."""
    if event == "status":
        return StatusEvent(job=Job.model_validate_json(data))
    if event == "done":
        return DoneEvent(job=Job.model_validate_json(data))
    if event == "partial_image":
        return PartialImageEvent.model_validate_json(data)
    if event == "progress":
        return ProgressEvent.model_validate_json(data)
    return None
