"""Plain FastAPI dependencies: what a handler needs, taken from the app's container at call time.

No dependency-injector wiring: a function call per request is the cheapest lookup, and tests still swap
any part with `container.<provider>.override(...)`. `async def`: FastAPI runs a plain `def` dependency
in a worker thread, which cost more than the rest of a detail read.
"""

from fastapi import Header, Request

from pixyproxy.container import Container
from pixyproxy.domain.errors import InvalidImageRequest
from pixyproxy.domain.models import Caller
from pixyproxy.entrypoints.middleware.api_keys import CALLER_SCOPE_KEY
from pixyproxy.settings import Settings


def services(request: Request) -> Container:
    """The container itself, for DirectRoutes (which take no dependencies)."""
    return request.app.state.container


async def settings(request: Request) -> Settings:
    return request.app.state.container.settings()


async def caller(request: Request) -> Caller | None:
    """The API key's holder the auth middleware recognised; None when keys are off."""
    return request.scope.get(CALLER_SCOPE_KEY)


async def idempotency_key(
    request: Request,
    idempotency_key: str | None = Header(
        default=None,
        max_length=255,
        description="Send the same key again to get the first image back instead of paying twice.",
    ),
) -> str | None:
    """The one Idempotency-Key a generating route may carry (at most 255 characters)."""
    if idempotency_key is not None and len(request.headers.getlist("idempotency-key")) > 1:
        # Two keys are ambiguous: whichever one we picked, the client might retry with the other.
        raise InvalidImageRequest("header.idempotency-key: send exactly one Idempotency-Key")
    return idempotency_key
