"""Every IPv6 form that carries an IPv4 address is judged by that IPv4 address: at submit (the literal
URL), for DNS answers, and at each delivery attempt (the dispatcher's checks)."""

import ipaddress

import pytest

from pixyproxy.domain.embedded_ipv4 import embedded_ipv4
from pixyproxy.domain.errors import InvalidWebhookUrl
from pixyproxy.domain.webhook_dispatcher import WebhookDispatcher
from pixyproxy.domain.webhook_urls import check_webhook_url
from pixyproxy.domain.webhooks import RetryPolicy, WebhookDelivery, validate_webhook_url
from tests.unit.test_webhook_urls import StaticResolver

PRIVATE_V4 = ["127.0.0.1", "10.0.0.5", "169.254.169.254", "192.168.1.1", "0.0.0.0", "100.64.0.1"]
PUBLIC_V4 = ["8.8.8.8", "93.184.216.34"]


def nat64_local(v4: str, prefix_bits: int) -> str:
    """64:ff9b:1::/48 with the IPv4 address placed as RFC 6052 does for that prefix length."""
    offsets = {48: (6, 7, 9, 10), 56: (7, 9, 10, 11), 64: (9, 10, 11, 12), 96: (12, 13, 14, 15)}[prefix_bits]
    packed = bytearray(ipaddress.IPv6Address("64:ff9b:1::").packed)
    for offset, byte in zip(offsets, ipaddress.IPv4Address(v4).packed, strict=True):
        packed[offset] = byte
    return str(ipaddress.IPv6Address(bytes(packed)))


def teredo(client: str, server: str = "65.54.227.120") -> str:
    inverted = bytes(b ^ 0xFF for b in ipaddress.IPv4Address(client).packed)
    packed = b"\x20\x01\x00\x00" + ipaddress.IPv4Address(server).packed + b"\x80\x00\x00\x00" + inverted
    return str(ipaddress.IPv6Address(packed))


def spellings(v4: str) -> list[str]:
    """Every way of writing an IPv6 address that leads to IPv4 address `v4`."""
    hi, lo = (int(ipaddress.IPv4Address(v4)) >> 16, int(ipaddress.IPv4Address(v4)) & 0xFFFF)
    hexed = f"{hi:x}:{lo:x}"
    return [
        f"::{v4}",  # IPv4-compatible, dotted
        f"::{hexed}",  # IPv4-compatible, hex
        f"0:0:0:0:0:0:{hexed}",
        f"::ffff:{v4}",  # IPv4-mapped
        f"::ffff:{hexed}",
        f"::FFFF:{hexed.upper()}",
        f"0000:0000:0000:0000:0000:ffff:{v4}",
        f"::ffff:0:{hexed}",  # IPv4-translated (SIIT)
        f"64:ff9b::{v4}",  # NAT64 well-known prefix
        f"64:ff9b::{hexed}",
        f"64:FF9B:0:0:0:0:{hexed}",
        *(nat64_local(v4, bits) for bits in (48, 56, 64, 96)),  # NAT64 local-use prefix
        f"2002:{hexed}::1",  # 6to4
        f"2002:{hexed}:abcd::",
        teredo(v4),  # Teredo: the client's address, inverted
        teredo("8.8.8.8", server=v4),  # Teredo: the server's address
    ]


PRIVATE_SPELLINGS = [(v4, s) for v4 in PRIVATE_V4 for s in spellings(v4)]
# The local-use NAT64 prefix's length is the operator's choice, so every placement is judged and one
# that reads as 0.x.x.x refuses it: such spellings pass only with allow_private (tested below).
PUBLIC_SPELLINGS = [
    (v4, s) for v4 in PUBLIC_V4 for s in spellings(v4) if not s.startswith(("2001:", "64:ff9b:1:"))
] + [("8.8.8.8", teredo("8.8.8.8"))]


@pytest.mark.parametrize(("v4", "spelling"), PRIVATE_SPELLINGS)
def test_every_spelling_embeds_its_ipv4(v4: str, spelling: str) -> None:
    assert ipaddress.IPv4Address(v4) in embedded_ipv4(ipaddress.IPv6Address(spelling))


@pytest.mark.parametrize(("v4", "spelling"), PRIVATE_SPELLINGS)
def test_private_ipv4_in_any_ipv6_spelling_is_refused_at_submit(v4: str, spelling: str) -> None:
    with pytest.raises(InvalidWebhookUrl, match="PIXYPROXY_WEBHOOK_ALLOW_PRIVATE"):
        validate_webhook_url(f"http://[{spelling}]:8080/hook", allow_private=False)
    validate_webhook_url(f"http://[{spelling}]:8080/hook", allow_private=True)


@pytest.mark.parametrize(("v4", "spelling"), PRIVATE_SPELLINGS)
async def test_private_ipv4_in_a_dns_answer_is_refused(v4: str, spelling: str) -> None:
    resolver = StaticResolver({"hooks.example.com": ["93.184.216.34", spelling]})
    with pytest.raises(InvalidWebhookUrl, match="resolves to a private"):
        await check_webhook_url("https://hooks.example.com/hook", False, resolver)


@pytest.mark.parametrize(("v4", "spelling"), PUBLIC_SPELLINGS)
def test_public_ipv4_in_an_ipv6_spelling_passes(v4: str, spelling: str) -> None:
    validate_webhook_url(f"http://[{spelling}]/hook", allow_private=False)


def test_local_use_nat64_is_judged_by_every_placement() -> None:
    spelling = nat64_local("8.8.8.8", 96)
    assert len(embedded_ipv4(ipaddress.IPv6Address(spelling))) == 4
    with pytest.raises(InvalidWebhookUrl):
        validate_webhook_url(f"http://[{spelling}]/hook", allow_private=False)


def test_plain_ipv6_embeds_nothing() -> None:
    assert embedded_ipv4(ipaddress.IPv6Address("2606:2800:220:1:248:1893:25c8:1946")) == ()


class NeverCalledSender:
    def __init__(self) -> None:
        self.sent: list[str] = []

    async def send(self, target, webhook_id, payload):  # pragma: no cover - must not run
        self.sent.append(target.url)
        raise AssertionError("a refused address was called")


@pytest.mark.parametrize(
    "spelling",
    ["64:ff9b::7f00:1", "::7f00:1", "::127.0.0.1", "64:ff9b::a9fe:a9fe", nat64_local("127.0.0.1", 48)],
)
@pytest.mark.parametrize("through_dns", [False, True], ids=["literal", "dns"])
async def test_each_attempt_refuses_them_too(spelling: str, through_dns: bool) -> None:
    from datetime import UTC, datetime

    url = "http://hooks.example.com/hook" if through_dns else f"http://[{spelling}]/hook"
    resolver = StaticResolver({"hooks.example.com": [spelling]})
    sender = NeverCalledSender()
    dispatcher = WebhookDispatcher(
        outbox=None,  # type: ignore[arg-type]  # attempt() alone: nothing is stored
        sender=sender,
        resolver=resolver,
        retry=RetryPolicy(),
        allow_private=False,
        timeout_seconds=5,
    )
    now = datetime.now(UTC)
    delivery = WebhookDelivery("msg_1", "job-1", url, "image.job.succeeded", "{}", now, now)
    outcome = await dispatcher.attempt(delivery)
    assert outcome.status == "failed" and "private" in (outcome.last_error or "")
    assert sender.sent == []
