"""Plain FastAPI dependencies: what a handler needs, taken from the app's container at call time.

No dependency-injector wiring: a function call per request is the cheapest lookup, and tests still swap
any part with `container.<provider>.override(...)`. `async def`: FastAPI runs a plain `def` dependency
in a worker thread, which cost more than the rest of a detail read.
"""

from fastapi import Request

from pixyproxy.container import Container
from pixyproxy.domain.models import Caller
from pixyproxy.domain.service import ImageService
from pixyproxy.entrypoints.middleware.api_keys import CALLER_SCOPE_KEY
from pixyproxy.settings import Settings


def services(request: Request) -> Container:
    """The container itself, for DirectRoutes (which take no dependencies)."""
    return request.app.state.container


async def image_service(request: Request) -> ImageService:
    return request.app.state.container.image_service()


async def settings(request: Request) -> Settings:
    return request.app.state.container.settings()


async def caller(request: Request) -> Caller | None:
    """The API key's holder the auth middleware recognised; None when keys are off."""
    return request.scope.get(CALLER_SCOPE_KEY)
