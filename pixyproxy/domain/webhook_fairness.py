"""Fair shares of the webhook delivery slots: attempts in flight are counted per tenant (the job's API key)
and per receiving origin (scheme, host and port), and an attempt starts only while both are under their
cap. Receivers that never answer then hold at most their tenant's (or origin's) share of the slots, and
delay only the deliveries that share it.

Deliveries of jobs made with API keys off have no tenant: only the origin cap applies to them.
"""

from collections import Counter
from dataclasses import dataclass
from urllib.parse import urlsplit


def origin_of(url: str) -> str:
    """The receiver a URL reaches: `scheme://host:port` (the host lowercased, the port made explicit)."""
    try:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError:
        return url
    return f"{scheme}://{(parts.hostname or '').lower()}:{port}"


@dataclass(frozen=True)
class Share:
    """What one attempt counts against: its tenant (or None) and its origin."""

    tenant: str | None
    origin: str


class FairShares:
    def __init__(self, per_tenant: int, per_origin: int) -> None:
        if per_tenant < 1 or per_origin < 1:
            raise ValueError("each share needs at least one slot")
        self.per_tenant = per_tenant
        self.per_origin = per_origin
        self._tenants: Counter[str] = Counter()
        self._origins: Counter[str] = Counter()

    @classmethod
    def of(cls, concurrency: int) -> "FairShares":
        """A tenant may hold a quarter of the slots, an origin an eighth."""
        return cls(max(1, concurrency // 4), max(1, concurrency // 8))

    def take(self, tenant: str | None, url: str) -> Share | None:
        """Count an attempt in, or None when its tenant or its origin holds its full share already."""
        share = Share(tenant, origin_of(url))
        if self._origins[share.origin] >= self.per_origin:
            return None
        if tenant is not None and self._tenants[tenant] >= self.per_tenant:
            return None
        self._origins[share.origin] += 1
        if tenant is not None:
            self._tenants[tenant] += 1
        return share

    def give_back(self, share: Share) -> None:
        self._origins[share.origin] -= 1
        if self._origins[share.origin] <= 0:
            del self._origins[share.origin]
        if share.tenant is not None:
            self._tenants[share.tenant] -= 1
            if self._tenants[share.tenant] <= 0:
                del self._tenants[share.tenant]
