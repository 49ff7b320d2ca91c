"""Who sees what: a user key sees, serves and deletes only the images it made; an admin key sees all.

None for the caller means keys are off (one open deployment): everything is visible, nothing is owned.
Another key's image is reported as not found, never as forbidden, so a guid says nothing about whether
it exists.
"""

import hashlib

from pixyproxy.domain.models import Caller


def owner_of(caller: Caller | None) -> str | None:
    """The owner a new record stores: the key's name (never the key), None when keys are off."""
    return caller.name if caller is not None else None


def sees(caller: Caller | None, owner: str | None) -> bool:
    """Whether `caller` may see a record stored with `owner`."""
    return caller is None or caller.is_admin or owner == caller.name


def owner_filter(caller: Caller | None) -> str | None:
    """The owner a listing is limited to; None means every owner (keys off, or an admin)."""
    return None if caller is None or caller.is_admin else caller.name


def scoped_idempotency_key(caller: Caller | None, key: str) -> str:
    """An Idempotency-Key as stored: each key name has its own namespace, so one tenant's key can never
    replay (or conflict with) another tenant's image. A hash keeps it within the column's 255 characters;
    keys sent with API keys off stay as they were stored before keys had names."""
    if caller is None:
        return key
    return "k1:" + hashlib.sha256(f"{caller.name}\n{key}".encode()).hexdigest()
