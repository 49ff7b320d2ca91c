"""A webhook URL reaches the log without its query or fragment, where receivers put their tokens."""

import logging

import pytest

from pixyproxy.domain.webhooks import FAILED, loggable_url
from tests.e2e.server import free_port
from tests.support.webhook_receiver import webhook_receiver
from tests.unit.test_webhook_delivery import JOB, dispatcher, outbox, sender, wait_for_status  # noqa: F401

TOKEN = "tok-3f9a1c77e2"


@pytest.mark.parametrize(
    ("url", "logged"),
    [
        (f"https://hooks.example.com/pixy?token={TOKEN}", "https://hooks.example.com/pixy"),
        (f"https://hooks.example.com:8443/a/b?x=1&token={TOKEN}#frag", "https://hooks.example.com:8443/a/b"),
        (f"http://[2606:2800:220:1::1]:9/h?{TOKEN}", "http://[2606:2800:220:1::1]:9/h"),
        (f"https://hooks.example.com#{TOKEN}", "https://hooks.example.com"),
        ("https://hooks.example.com:99999/", "(an unreadable URL)"),
    ],
)
def test_loggable_url_keeps_scheme_host_port_and_path(url: str, logged: str) -> None:
    assert loggable_url(url) == logged


async def test_a_refused_delivery_logs_its_url_without_the_query(outbox, sender, caplog) -> None:  # noqa: F811
    caplog.set_level(logging.INFO, logger="pixyproxy")
    with webhook_receiver(script=[404]) as receiver:
        worker = dispatcher(outbox, sender)
        await worker.init()
        try:
            await worker.announce(JOB["id"], f"{receiver.url}?token={TOKEN}", "succeeded", JOB)
            await wait_for_status(outbox, JOB["id"], FAILED)
        finally:
            await worker.close()
    assert receiver.url in caplog.text  # the line names where it went
    assert TOKEN not in caplog.text


async def test_retries_to_a_dead_receiver_log_no_query(outbox, sender, caplog) -> None:  # noqa: F811
    caplog.set_level(logging.INFO, logger="pixyproxy")
    url = f"http://127.0.0.1:{free_port()}/hook?token={TOKEN}"  # nothing listens: refused, retried
    worker = dispatcher(outbox, sender)
    await worker.init()
    try:
        await worker.announce(JOB["id"], url, "succeeded", JOB)
        await wait_for_status(outbox, JOB["id"], FAILED)
    finally:
        await worker.close()
    assert "gave up after" in caplog.text
    assert TOKEN not in caplog.text
