"""The request id's time stamp is the request's own second, though it is formatted once per second."""

import time

from pixyproxy.entrypoints import request_id


def _at(monkeypatch, nanoseconds: int) -> str:
    monkeypatch.setattr(request_id.time, "time_ns", lambda: nanoseconds)
    return request_id.new_request_id().split("-")[1]


def test_the_stamp_follows_the_clock_across_seconds(monkeypatch) -> None:
    first = 1_700_000_000
    expected = time.strftime("%Y%m%d%H%M%S", time.localtime(first))
    assert _at(monkeypatch, first * 10**9 + 5_000) == f"{expected}000005"
    assert _at(monkeypatch, first * 10**9 + 999_999_000) == f"{expected}999999"
    later = time.strftime("%Y%m%d%H%M%S", time.localtime(first + 1))
    assert _at(monkeypatch, (first + 1) * 10**9) == f"{later}000000"
    assert _at(monkeypatch, first * 10**9) == f"{expected}000000"  # a clock stepped back is followed too


def test_ids_are_unique_within_one_second(monkeypatch) -> None:
    monkeypatch.setattr(request_id.time, "time_ns", lambda: 1_700_000_000 * 10**9)
    assert len({request_id.new_request_id() for _ in range(100)}) == 100
