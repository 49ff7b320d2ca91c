"""HostResolver through the system resolver (getaddrinfo in asyncio's thread pool)."""

import asyncio
import socket


class SystemHostResolver:
    def __init__(self, timeout_seconds: float) -> None:
        self.timeout_seconds = timeout_seconds

    async def resolve(self, host: str, port: int) -> list[str]:
        loop = asyncio.get_running_loop()
        try:
            infos = await asyncio.wait_for(
                loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), self.timeout_seconds
            )
        except (OSError, TimeoutError, UnicodeError):
            # No answer is the caller's to judge: a 422 at submit, a later retry at delivery.
            return []
        return list(dict.fromkeys(str(info[4][0]) for info in infos))
