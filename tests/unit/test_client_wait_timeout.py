"""wait(use_events=True, timeout=...) ends in PixyProxyTimeout at the timeout, on both clients, even
while the event stream stays open and quiet (a blocking read cannot be interrupted: the read timeouts
end at the deadline instead)."""

import time

import pytest

from pixyproxy.client import AsyncPixyProxyClient, PixyProxyClient, PixyProxyTimeout
from tests.support.quiet_sse import quiet_sse_server

TIMEOUT = 2.0
LATE = 0.8  # what the load on a shared test machine may add


@pytest.mark.parametrize("ping_every", [None, 0.3, 1.8], ids=["silent", "pings", "ping-just-before"])
def test_the_sync_client_stops_waiting_at_the_timeout(ping_every) -> None:
    # A ping at 1.8 s of 2 s: a read timeout set when the stream opened would wait until 3.6 s.
    with quiet_sse_server(ping_every) as server, PixyProxyClient(server.base_url) as client:
        started = time.monotonic()
        with pytest.raises(PixyProxyTimeout, match="had not ended"):
            client.wait(server.job_id, use_events=True, timeout=TIMEOUT)
        elapsed = time.monotonic() - started
    assert TIMEOUT - 0.05 <= elapsed < TIMEOUT + LATE


@pytest.mark.parametrize("ping_every", [None, 1.8], ids=["silent", "ping-just-before"])
async def test_the_async_client_stops_waiting_at_the_timeout(ping_every) -> None:
    with quiet_sse_server(ping_every) as server:
        async with AsyncPixyProxyClient(server.base_url) as client:
            started = time.monotonic()
            with pytest.raises(PixyProxyTimeout, match="had not ended"):
                await client.wait(server.job_id, use_events=True, timeout=TIMEOUT)
            elapsed = time.monotonic() - started
    assert TIMEOUT - 0.05 <= elapsed < TIMEOUT + LATE
