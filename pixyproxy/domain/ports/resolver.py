from typing import Protocol


class HostResolver(Protocol):
    """Resolves a host name to its addresses (the adapter does the DNS)."""

    async def resolve(self, host: str, port: int) -> list[str]:
        """Every address `host` resolves to, as text; empty when it resolves to none (or DNS failed)."""
        ...
