from collections.abc import Sequence
from typing import Protocol


class Cooldowns(Protocol):
    """Which deployments are resting after a failure (a 429, a 5xx, a timeout, a refused connection):
    per process, or shared by every replica (Redis)."""

    async def cooling(self, keys: Sequence[str]) -> dict[str, float]:
        """Of `keys`, those cooling down now, with the seconds left. Never raises: a store that cannot be
        asked answers that nothing is cooling (routing then tries each deployment)."""
        ...

    async def cool(self, key: str, seconds: float) -> None:
        """Rest `key` for `seconds` (a longer rest already under way is kept). Never raises."""
        ...

    async def close(self) -> None: ...
