"""Readiness: whether each dependency answers (metadata, storage, generator, and Redis when used)."""

from collections.abc import Mapping
from typing import Protocol

from pixyproxy.domain.errors import ImageException
from pixyproxy.domain.models import Readiness


class Pingable(Protocol):
    async def ping(self) -> None:
        """Raise an ImageException (its message says why) when the dependency cannot serve."""
        ...


class CheckReadiness:
    def __init__(self, dependencies: Mapping[str, Pingable | None]) -> None:
        # None: not configured (Redis without PIXYPROXY_REDIS_URL), so not checked.
        self.dependencies = {name: d for name, d in dependencies.items() if d is not None}

    async def __call__(self) -> Readiness:
        readiness = Readiness()
        for name, dependency in self.dependencies.items():
            try:
                await dependency.ping()
                readiness.checks[name] = "ok"
            except ImageException as exc:
                readiness.checks[name] = exc.message
        return readiness
