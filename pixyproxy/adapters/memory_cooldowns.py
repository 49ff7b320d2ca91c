"""Deployment cooldowns in this process's memory (no Redis configured)."""

import time
from collections.abc import Sequence


class MemoryCooldowns:
    def __init__(self) -> None:
        self._until: dict[str, float] = {}

    async def cooling(self, keys: Sequence[str]) -> dict[str, float]:
        if not self._until:
            return {}
        now = time.monotonic()
        return {key: until - now for key in keys if (until := self._until.get(key, 0.0)) > now}

    async def cool(self, key: str, seconds: float) -> None:
        until = time.monotonic() + seconds
        self._until[key] = max(until, self._until.get(key, 0.0))

    async def close(self) -> None:
        return None
