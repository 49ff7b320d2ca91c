"""Ids from a client: a value that is not a UUID names nothing (a 404), never a lookup with the raw text."""

from uuid import UUID

from pixyproxy.domain.errors import ImageNotFound, JobNotFound
from pixyproxy.domain.guids import canonical_uuid


def _parse(value: str | UUID, not_found: type[ImageNotFound]) -> UUID:
    if isinstance(value, UUID):
        return value
    parsed = canonical_uuid(value)
    if parsed is None:
        raise not_found()
    return parsed


def parse_guid(guid: str | UUID) -> UUID:
    return _parse(guid, ImageNotFound)


def parse_job_id(job_id: str | UUID) -> UUID:
    return _parse(job_id, JobNotFound)
