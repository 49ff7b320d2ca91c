"""Readiness: whether each dependency answers (metadata, storage, generator, and Redis when used)."""

from collections.abc import Mapping
from typing import Protocol

from pixyproxy.domain.errors import ImageException
from pixyproxy.domain.models import Readiness


class Pingable(Protocol):
    async def ping(self) -> None:
        """Raise an ImageException (its message says why) when the dependency cannot serve."""
        ...


class ProviderChecks(Protocol):
    """A generator that reaches several deployments: each one's state by its label."""

    async def provider_checks(self) -> Mapping[str, str]: ...


class CheckReadiness:
    def __init__(
        self, dependencies: Mapping[str, Pingable | None], providers: ProviderChecks | None = None
    ) -> None:
        # None: not configured (Redis without PIXYPROXY_REDIS_URL), so not checked.
        self.dependencies = {name: d for name, d in dependencies.items() if d is not None}
        self.providers = providers

    async def __call__(self) -> Readiness:
        readiness = Readiness()
        for name, dependency in self.dependencies.items():
            try:
                await dependency.ping()
                readiness.checks[name] = "ok"
            except ImageException as exc:
                readiness.checks[name] = exc.message
        # The model catalogue's deployments, each by its label (the routing generator has them).
        provider_checks = getattr(self.providers, "provider_checks", None)
        if provider_checks is not None:
            for label, state in (await provider_checks()).items():
                readiness.checks[f"provider {label}"] = state
        return readiness
