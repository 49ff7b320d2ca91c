"""Which webhook URLs are accepted: http(s) only, and no private, loopback or link-local targets
(literal or resolved) unless private targets are allowed."""

import pytest

from pixyproxy.adapters.dns_resolver import SystemHostResolver
from pixyproxy.domain.errors import InvalidImageRequest, InvalidWebhookUrl
from pixyproxy.domain.webhook_urls import WebhookUrlPolicy, check_webhook_url
from pixyproxy.domain.webhooks import event_type, validate_webhook_url


class StaticResolver:
    def __init__(self, answers: dict[str, list[str]]) -> None:
        self.answers = answers
        self.asked: list[str] = []

    async def resolve(self, host: str, port: int) -> list[str]:
        self.asked.append(host)
        return self.answers.get(host, [])


PUBLIC = [
    "https://hooks.example.com/pixy",
    "http://hooks.example.com:8080/a?b=c",
    "https://93.184.216.34/hook",
    "https://[2606:2800:220:1:248:1893:25c8:1946]/hook",
]
REFUSED_ADDRESSES = [
    "http://127.0.0.1/hook",
    "http://127.8.9.10:9000/",
    "http://10.0.0.5/",
    "http://172.16.3.4/",
    "http://192.168.1.1/",
    "http://169.254.169.254/latest/meta-data/",  # cloud metadata
    "http://100.64.0.1/",  # shared address space
    "http://0.0.0.0/",
    "http://[::1]/",
    "http://[fe80::1]/",
    "http://[fc00::1]/",
    "http://[::ffff:127.0.0.1]/",  # IPv4-mapped loopback
    "http://[::ffff:169.254.169.254]/",
    "http://224.0.0.1/",
    "http://localhost:8000/hook",
    "http://api.localhost/hook",
]
MALFORMED = [
    "",
    "ftp://hooks.example.com/",
    "file:///etc/passwd",
    "gopher://hooks.example.com/",
    "javascript:alert(1)",
    "hooks.example.com/no-scheme",
    "https:///no-host",
    "https://user:secret@hooks.example.com/",
    "https://hooks.example.com:99999/",
    "https://hooks.example.com:port/",
    "https://hooks.example.com/with space",
    "https://hooks.example.com/\r\nX-Injected: 1",
    "https://hooks.example.com/" + "a" * 2100,
]


@pytest.mark.parametrize("url", PUBLIC)
def test_public_urls_pass(url: str) -> None:
    target = validate_webhook_url(url, allow_private=False)
    assert target.url == url
    assert target.scheme in ("http", "https")


def test_default_ports() -> None:
    assert validate_webhook_url("https://hooks.example.com/").port == 443
    assert validate_webhook_url("http://hooks.example.com/").port == 80
    assert validate_webhook_url("http://hooks.example.com:8080/").port == 8080


@pytest.mark.parametrize("url", REFUSED_ADDRESSES)
def test_private_loopback_link_local_refused(url: str) -> None:
    with pytest.raises(InvalidWebhookUrl) as caught:
        validate_webhook_url(url, allow_private=False)
    assert "PIXYPROXY_WEBHOOK_ALLOW_PRIVATE" in caught.value.message
    # A 422 through the existing mapping of invalid requests.
    assert isinstance(caught.value, InvalidImageRequest)


@pytest.mark.parametrize("url", REFUSED_ADDRESSES)
def test_allow_private_lets_them_through(url: str) -> None:
    validate_webhook_url(url, allow_private=True)


@pytest.mark.parametrize("url", MALFORMED)
def test_malformed_or_other_schemes_refused_even_when_private_allowed(url: str) -> None:
    with pytest.raises(InvalidWebhookUrl) as caught:
        validate_webhook_url(url, allow_private=True)
    assert caught.value.message.startswith("webhook_url:")


async def test_a_name_resolving_to_a_private_address_is_refused() -> None:
    resolver = StaticResolver({"internal.example.com": ["93.184.216.34", "10.1.2.3"]})
    with pytest.raises(InvalidWebhookUrl, match="resolves to a private"):
        await check_webhook_url("https://internal.example.com/hook", False, resolver)
    target = await check_webhook_url("https://internal.example.com/hook", True, resolver)
    assert target.addresses == ("93.184.216.34", "10.1.2.3")


async def test_a_name_resolving_to_public_addresses_passes_with_them() -> None:
    resolver = StaticResolver({"hooks.example.com": ["93.184.216.34"]})
    target = await check_webhook_url("https://hooks.example.com/hook", False, resolver)
    assert target.addresses == ("93.184.216.34",)
    assert (target.host, target.port) == ("hooks.example.com", 443)


async def test_a_name_that_does_not_resolve_is_refused() -> None:
    with pytest.raises(InvalidWebhookUrl, match="does not resolve"):
        await check_webhook_url("https://nowhere.example.com/", False, StaticResolver({}))


async def test_literal_addresses_skip_dns() -> None:
    resolver = StaticResolver({})
    target = await check_webhook_url("http://127.0.0.1:9/", True, resolver)
    assert target.addresses == ("127.0.0.1",)
    assert resolver.asked == []


async def test_policy_without_a_secret_refuses_every_url() -> None:
    policy = WebhookUrlPolicy(StaticResolver({}), allow_private=True, enabled=False)
    with pytest.raises(InvalidWebhookUrl, match="PIXYPROXY_WEBHOOK_SECRET"):
        await policy.check("http://127.0.0.1:9/")


async def test_system_resolver_answers_localhost_from_the_hosts_file() -> None:
    addresses = await SystemHostResolver(5.0).resolve("localhost", 80)
    assert {"127.0.0.1", "::1"} & set(addresses)
    with pytest.raises(InvalidWebhookUrl, match="localhost is refused"):
        await check_webhook_url("http://localhost./hook", False, SystemHostResolver(5.0))  # trailing dot too


def test_event_types() -> None:
    assert event_type("succeeded") == "image.job.succeeded"
    assert event_type("failed") == "image.job.failed"
    assert event_type("canceled") == "image.job.canceled"
    with pytest.raises(ValueError):
        event_type("running")
