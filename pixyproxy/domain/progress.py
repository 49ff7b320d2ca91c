"""How far the image being made has got: told by whatever makes it (a provider's progress messages, the
offline generator's stages), heard by whatever waits for it (a job), without a callback passed through
every generator, decorator and fallback in between.

The hearer is a context variable, so each of a job's images (each its own task) has its own, and a
worker thread started with asyncio.to_thread inherits it. With none set (outside a job),
report_progress does nothing.
"""

import contextlib
import math
from collections.abc import Callable, Iterator
from contextvars import ContextVar

Reporter = Callable[[float], None]

_reporter: ContextVar[Reporter | None] = ContextVar("pixyproxy_progress", default=None)


def report_progress(fraction: float) -> None:
    """The current image is `fraction` (0..1) made; values outside are clamped, NaN ignored. Cheap: a
    generator may call it as often as its provider tells it (the job throttles what it shows and keeps)."""
    reporter = _reporter.get()
    if reporter is None:
        return
    if math.isnan(fraction):
        return
    reporter(min(1.0, max(0.0, fraction)))


@contextlib.contextmanager
def reporting_to(reporter: Reporter) -> Iterator[None]:
    """report_progress calls made within (in this task, and threads it starts) go to `reporter`."""
    token = _reporter.set(reporter)
    try:
        yield
    finally:
        _reporter.reset(token)


def report_steps(done: object, total: object) -> None:
    """`done` of `total` steps (a sampler's), as a provider's message gives them: one that is not a
    pair of numbers with total > 0 is ignored."""
    if isinstance(done, int | float) and isinstance(total, int | float) and total > 0:
        report_progress(done / total)
