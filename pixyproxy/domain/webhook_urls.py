"""The check of a job's webhook_url at submit and before each delivery: its shape (webhooks.py), then the
DNS answer through the HostResolver port, so a name that points into the private network is refused."""

from pixyproxy.domain.errors import InvalidWebhookUrl
from pixyproxy.domain.ports.resolver import HostResolver
from pixyproxy.domain.webhooks import WebhookTarget, check_addresses, validate_webhook_url


async def check_webhook_url(url: str, allow_private: bool, resolver: "HostResolver") -> WebhookTarget:
    """validate_webhook_url, then the DNS answer for a host name: every address must be public unless
    `allow_private`. The target carries the addresses checked, so a caller can connect to exactly those."""
    target = validate_webhook_url(url, allow_private)
    if target.addresses:
        return target
    addresses = check_addresses(target.host, await resolver.resolve(target.host, target.port), allow_private)
    return WebhookTarget(target.url, target.scheme, target.host, target.port, addresses)


class WebhookUrlPolicy:
    """What submit asks before it accepts a webhook_url: `await policy.check(url)` answers the URL or
    raises InvalidWebhookUrl (a 422). Built by the container from the PIXYPROXY_WEBHOOK_* settings."""

    def __init__(self, resolver: "HostResolver", allow_private: bool = False, enabled: bool = True) -> None:
        self.resolver = resolver
        self.allow_private = allow_private
        self.enabled = enabled

    async def check(self, url: str) -> str:
        if not self.enabled:
            raise InvalidWebhookUrl(
                "webhook_url: this server sends no webhooks (PIXYPROXY_WEBHOOK_SECRET is not set)"
            )
        await check_webhook_url(url, self.allow_private, self.resolver)
        return url
