"""PixyProxyClient: the blocking client.

Generated from client/aio.py by scripts/unasync.py: edit that file, then run `python scripts/unasync.py`.
"""

import contextlib
import os
import time
from collections.abc import Generator, Iterator, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any

import httpx

from pixyproxy.client import _base
from pixyproxy.client._base import GuidLike, JobLike, RetryPolicy
from pixyproxy.client.errors import PixyProxyConnectionError, error_from_response
from pixyproxy.client.models import ContentUrl, DoneEvent, ImageDetail, Job, JobEvent, UsageReport

SSE = {"Accept": "text/event-stream"}


class PixyProxyClient:
    """A PixyProxy server, over HTTP.

        with PixyProxyClient("http://pixyproxy:8001") as client:
            image = client.generate("a lighthouse at dusk, watercolour")
            png = client.content(image.guid)

    `base_url` defaults to $PIXYPROXY_URL, then http://127.0.0.1:8001; `api_key` to $PIXYPROXY_API_KEY
    (sent as `Authorization: Bearer`). Share one client: it pools connections, and many calls may be
    under way on it at once.
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
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        options = _base.client_options(base_url, api_key, timeout, headers)
        self.base_url: str = options["base_url"]
        self.generate_timeout = _base.GENERATE_TIMEOUT if generate_timeout is None else generate_timeout
        self.retry = retry or RetryPolicy()
        self._http = httpx.Client(transport=transport, **options)

    def __enter__(self) -> "PixyProxyClient":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def __repr__(self) -> str:
        return f"PixyProxyClient({self.base_url!r})"

    # -- images ---------------------------------------------------------------------------------

    def generate(
        self,
        prompt: str,
        *,
        model: str | None = None,
        size: str | None = None,
        quality: str | None = None,
        background: str | None = None,
        output_format: str | None = None,
        output_compression: int | None = None,
        negative_prompt: str | None = None,
        moderation: str | None = None,
        idempotency_key: str | None = None,
    ) -> ImageDetail:
        """Generate an image and store it; returns its details once it is stored.

        `negative_prompt`: what not to draw, for models that take one (GET /models lists them); the
        others refuse it by name (InvalidRequest), never drop it.
        One Idempotency-Key (yours, or a fresh one per call) is sent on every attempt, so the client's own
        retries never make a second image. Pass your own key to make a retry of *your* call safe too.
        """
        body = _base.generation_body(
            prompt,
            model=model,
            size=size,
            quality=quality,
            background=background,
            output_format=output_format,
            output_compression=output_compression,
            negative_prompt=negative_prompt,
            moderation=moderation,
        )
        return self._generation("/image/", body, idempotency_key)

    def edit(
        self,
        guid: GuidLike,
        prompt: str,
        *,
        mask: GuidLike | None = None,
        references: Sequence[GuidLike] | None = None,
        model: str | None = None,
        size: str | None = None,
        quality: str | None = None,
        background: str | None = None,
        output_format: str | None = None,
        output_compression: int | None = None,
        negative_prompt: str | None = None,
        idempotency_key: str | None = None,
    ) -> ImageDetail:
        """A new image made from a stored one as `prompt` says; its details carry parent_guid.

        `mask`: a stored PNG of the image's size whose fully transparent pixels mark what may change.
        `references`: up to 15 more stored images given to the model. The options are generate()'s but
        `moderation` (the Images API's edits have none); retries are as safe as generate()'s (one
        Idempotency-Key on every attempt).
        """
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
            negative_prompt=negative_prompt,
        )
        return self._generation(_base.guid_path(guid, "/edits"), body, idempotency_key)

    def _generation(self, path: str, body: dict[str, Any], idempotency_key: str | None) -> ImageDetail:
        key = idempotency_key or _base.new_idempotency_key()
        response = self._send(
            "POST",
            path,
            json=body,
            headers={"Idempotency-Key": key},
            timeout=self.generate_timeout,
            generation=True,
        )
        return _base.parse_image(response)

    def get(self, guid: GuidLike) -> ImageDetail:
        return _base.parse_image(self._send("GET", _base.guid_path(guid)))

    def delete(self, guid: GuidLike) -> None:
        """Delete the image: its details, its bytes and every variant (NotFound if there is none)."""
        self._send("DELETE", _base.guid_path(guid))

    def list(
        self,
        *,
        q: str | None = None,
        model: str | None = None,
        created_after: datetime | str | None = None,
        created_before: datetime | str | None = None,
        page_size: int = 100,
    ) -> Iterator[ImageDetail]:
        """Every image, newest first, fetched a page at a time by following the `Link` header.

        The filters combine: `q` (every word in the prompt, any case or accent), one `model`, and a
        window of creation times (exclusive; a datetime, or RFC 3339 text).
        """
        params: dict[str, str] | None = _base.list_params(page_size, q, model, created_after, created_before)
        while params is not None:
            response = self._send("GET", "/image/", params=params)
            yield from _base.parse_images(response)
            params = _base.next_page_params(response)

    def content(self, guid: GuidLike, *, width: int | None = None, format: str | None = None) -> bytes:
        """The image's bytes, in the format it was made in; or, with `width` (64, 128, 256, 512, 1024) or
        `format` (png, webp, jpeg, avif), a variant made from it."""
        path = _base.guid_path(guid, "/content")
        response = self._send("GET", path, params=_base.variant_params(width, format))
        return response.content

    def download(
        self,
        guid: GuidLike,
        path: str | os.PathLike[str],
        *,
        width: int | None = None,
        format: str | None = None,
    ) -> Path:
        """Stream the image (or the variant `width` and `format` ask for) to `path`: written to a
        temporary file beside it, then renamed into place, with the permissions your umask gives."""
        target = Path(path)
        response = self._send(
            "GET",
            _base.guid_path(guid, "/content"),
            params=_base.variant_params(width, format),
            stream=True,
        )
        partial, out = _base.open_partial(target)
        try:
            with out:
                for chunk in response.iter_bytes():
                    out.write(chunk)
            partial.replace(target)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        finally:
            response.close()
        return target

    def url(self, guid: GuidLike, *, width: int | None = None, format: str | None = None) -> ContentUrl:
        """A URL that serves the image (or a variant) with a plain GET: time-limited and presigned when
        stored on S3."""
        path = _base.guid_path(guid, "/url")
        return _base.parse_url(self._send("GET", path, params=_base.variant_params(width, format)))

    def usage(self, *, since: date | str | None = None, until: date | str | None = None) -> UsageReport:
        """Images, tokens and estimated cost per API key over `[since, until)` (default: today, UTC);
        a user key sees its own line, an admin key every key's."""
        return _base.parse_usage(self._send("GET", "/usage", params=_base.usage_params(since, until)))

    # -- generation jobs ------------------------------------------------------------------------

    def submit(
        self,
        prompt: str,
        *,
        n: int | None = None,
        webhook_url: str | None = None,
        partial_images: int | None = None,
        model: str | None = None,
        size: str | None = None,
        quality: str | None = None,
        background: str | None = None,
        output_format: str | None = None,
        output_compression: int | None = None,
        negative_prompt: str | None = None,
        moderation: str | None = None,
        idempotency_key: str | None = None,
    ) -> Job:
        """Submit a generation job of `n` images (1-10); answers at once with the queued job.

        Then wait() for it, follow its events(), or give a `webhook_url` that the server POSTs to when
        it ends (signed: see docs/jobs.md). `partial_images` (1-3) asks for previews in events() where
        the generator streams them. One Idempotency-Key on every attempt, as generate() does, so a
        retried submit never makes a second job.
        """
        body = _base.job_body(
            prompt,
            n,
            webhook_url,
            partial_images,
            model=model,
            size=size,
            quality=quality,
            background=background,
            output_format=output_format,
            output_compression=output_compression,
            negative_prompt=negative_prompt,
            moderation=moderation,
        )
        key = idempotency_key or _base.new_idempotency_key()
        response = self._send("POST", "/image/jobs", json=body, headers={"Idempotency-Key": key})
        return _base.parse_job(response)

    def job(self, job: JobLike) -> Job:
        """The job as it is now."""
        return _base.parse_job(self._send("GET", _base.job_path(job)))

    def jobs(self, *, status: str | None = None, page_size: int = 100) -> Iterator[Job]:
        """Every job (of this API key), newest first, optionally only those in `status`."""
        params: dict[str, str] | None = _base.job_list_params(page_size, status)
        while params is not None:
            response = self._send("GET", "/image/jobs", params=params)
            yield from _base.parse_jobs(response)
            params = _base.next_page_params(response)

    def cancel(self, job: JobLike) -> Job:
        """Cancel a queued or running job (nothing more is stored); JobFinished if it had ended."""
        return _base.parse_job(self._send("DELETE", _base.job_path(job)))

    def wait(
        self,
        job: JobLike,
        *,
        timeout: float | None = None,
        poll_interval: float = 1.0,
        use_events: bool = False,
    ) -> Job:
        """The job once it has ended (succeeded, failed or canceled: look at `status` and `error`).

        Polls GET /image/jobs/{id} every `poll_interval` seconds, or with `use_events` follows the
        event stream instead. Raises PixyProxyTimeout if it has not ended within `timeout` seconds.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        if use_events:
            with contextlib.closing(self._follow(job, deadline)) as events:
                for event in events:
                    if isinstance(event, DoneEvent):
                        return event.job
            raise AssertionError("the event stream ends only with a DoneEvent or an error")
        while True:
            current = self.job(job)
            if current.finished:
                return current
            if deadline is not None and time.monotonic() + poll_interval > deadline:
                raise _base.job_timeout(job, timeout)
            time.sleep(poll_interval)

    def events(self, job: JobLike) -> Generator[JobEvent, None, None]:
        """The job's events as they happen: a StatusEvent with the job first, another on every change,
        a ProgressEvent each time its progress (0..1) moves, PartialImageEvent previews where the
        generator streams them, and a DoneEvent last. A dropped
        connection is opened again (the server starts again with the job as it is)."""
        return self._follow(job, None)

    def _follow(self, job: JobLike, deadline: float | None) -> Generator[JobEvent, None, None]:
        """events(), ending in PixyProxyTimeout at `deadline` (time.monotonic()) if one is given."""
        path = _base.job_path(job, "/events")
        failures = 0
        while True:
            timeout = _base.events_timeout(job, deadline)
            response = self._send("GET", path, stream=True, timeout=timeout, headers=SSE)
            parser = _base.SSEParser()
            opening = True
            error: PixyProxyConnectionError | None = None
            try:
                for line in response.iter_lines():
                    _base.check_deadline(job, deadline)
                    if _base.read_outlasts_deadline(line, timeout, deadline):
                        break  # reconnect with a read timeout that ends at the deadline
                    parsed = parser.feed(line)
                    event = _base.job_event(*parsed) if parsed is not None else None
                    if event is None:
                        continue
                    # Each connection opens with the job as it is: only what follows counts as progress,
                    # so a stream that keeps closing right after it is given up on.
                    if not opening:
                        failures = 0
                    opening = False
                    yield event
                    if isinstance(event, DoneEvent):
                        return
                else:
                    error = PixyProxyConnectionError(
                        f"the event stream of job {_base.job_id_text(job)} closed before the job ended"
                    )
            except httpx.TransportError as exc:
                _base.check_deadline(job, deadline)
                error = _base.transport_error(exc, str(response.url))
            finally:
                response.close()
            if error is None:
                continue
            wait = self.retry.wait_after_transport_error(failures)
            if wait is None:
                raise error
            time.sleep(wait)
            failures += 1

    # -- plumbing -------------------------------------------------------------------------------

    def _send(
        self, method: str, path: str, *, stream: bool = False, generation: bool = False, **kwargs: Any
    ) -> httpx.Response:
        attempt = 0
        while True:
            request = self._http.build_request(method, path, **kwargs)
            try:
                response = self._http.send(request, stream=stream)
            except httpx.TransportError as exc:
                wait = self.retry.wait_after_transport_error(attempt)
                if wait is None:
                    raise _base.transport_error(exc, str(request.url)) from exc
            else:
                if response.is_success:
                    return response
                if stream:
                    response.read()
                    response.close()
                error = error_from_response(response)
                wait = self.retry.wait_after_error(attempt, error, generation=generation)
                if wait is None:
                    raise error
            time.sleep(wait)
            attempt += 1
