"""A job's progress while it runs: its images' fractions (each told through report_progress, or 1 once
the image is stored) combined into one 0..1 over the job, shown to watchers and kept in the job's row.

A provider may report every sampler step of every image: what is shown and written is throttled to one
value per `interval` (the first at once, then the newest when the interval is up), and rows are written
one at a time, skipping to the newest value.
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from pixyproxy.domain.progress import Reporter

log = logging.getLogger(__name__)

PROGRESS_INTERVAL_SECONDS = 0.25  # at most four values a second per job
DECIMALS = 3  # a tenth of a percent: finer is noise to a reader and churn to the row

CallLater = Callable[[float, Callable[[], None]], asyncio.TimerHandle]


class LatestWriter:
    """Writes one value at a time; a value put while a write runs replaces any still waiting."""

    def __init__(self, write: Callable[[float], Awaitable[None]]) -> None:
        self._write = write
        self._pending: float | None = None
        self._task: asyncio.Task[None] | None = None

    def put(self, value: float) -> None:
        self._pending = value
        if self._task is None:
            self._task = asyncio.create_task(self._drain(), name="job-progress-write")

    async def _drain(self) -> None:
        try:
            while self._pending is not None:
                value, self._pending = self._pending, None
                try:
                    await self._write(value)
                except Exception as exc:  # progress is a courtesy: the job goes on without it
                    log.debug("a job's progress was not written (%s)", exc)
        finally:
            self._task = None

    async def close(self) -> None:
        """Drop what is not written yet (the job's end writes its own) and let a write under way end:
        cancelling it would cost the database its connection."""
        self._pending = None
        task = self._task
        if task is not None:
            await asyncio.wait({task})


class JobProgress:
    """(images stored + the fraction reported of each image being made) / n, never going back, handed
    to `show` at most once per `interval` seconds (clock and call_later are the loop's unless given)."""

    def __init__(
        self,
        count: int,
        show: Callable[[float], None],
        interval: float = PROGRESS_INTERVAL_SECONDS,
        *,
        clock: Callable[[], float] = time.monotonic,
        call_later: CallLater | None = None,
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self._fractions = [0.0] * count
        self._show = show
        self.interval = interval
        self._clock = clock
        self._call_later: CallLater = call_later or self._loop.call_later
        self.value: float | None = None  # the newest combined value
        self.shown: float | None = None
        self._shown_at: float | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._closed = False

    def reporter(self, index: int) -> Reporter:
        """What image `index`'s report_progress calls: from a worker thread, hopping to the loop."""

        def report(fraction: float) -> None:
            if _running_loop() is self._loop:
                self._set(index, fraction)
            else:
                with contextlib.suppress(RuntimeError):  # the loop closed under a thread still drawing
                    self._loop.call_soon_threadsafe(self._set, index, fraction)

        return report

    def done(self, index: int) -> None:
        self._set(index, 1.0)

    def _set(self, index: int, fraction: float) -> None:
        if self._closed:
            return
        self._fractions[index] = fraction
        value = round(sum(self._fractions) / len(self._fractions), DECIMALS)
        if self.value is not None and value <= self.value:
            return  # a provider starting a second pass (or a fallback) does not take the job back
        self.value = value
        if value >= 1.0:
            return  # every image stored: the job's end writes and tells 1 (one write fewer per job)
        now = self._clock()
        if self._shown_at is None or now - self._shown_at >= self.interval:
            self._show_now(now)
        elif self._timer is None:
            self._timer = self._call_later(self.interval - (now - self._shown_at), self._due)

    def _due(self) -> None:
        self._timer = None
        if not self._closed and self.value != self.shown and self.value is not None and self.value < 1.0:
            self._show_now(self._clock())

    def _show_now(self, now: float) -> None:
        assert self.value is not None
        self._shown_at = now
        self.shown = self.value
        self._show(self.value)

    def close(self) -> None:
        """Nothing more is shown (the job's end is)."""
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


def _running_loop() -> asyncio.AbstractEventLoop | None:
    with contextlib.suppress(RuntimeError):
        return asyncio.get_running_loop()
    return None
