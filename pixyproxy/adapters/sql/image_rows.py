"""What the SQL adapters (SQLite, MySQL) share about the `images` table.

* The column lists: DETAIL_COLUMNS (what ImageDetail maps to), SELECT_COLUMNS (what every SELECT returns,
  in order) and INSERT_COLUMNS (what add() writes). Each adapter spells its statements from these.
* Row mapping: detail_to_row() for an INSERT, stored_image() for a SELECTed row (a plain sequence in
  SELECT_COLUMNS order).
* Keyset paging: page_from_rows() turns the `limit + 1` rows of a list query into an ImagePage and its
  next position (the last row's created_at and id).
* IN-list chunking: chunks() cuts a long list of guids into statements of IN_LIST_CHUNK values.

Adding a column to `images`: add the field to ImageDetail, add its name to DETAIL_COLUMNS below (one
line; SELECT, INSERT, the row mapping and MySQL's schema check follow), and add the column in a new
migration of each adapter (sqlite_repository.MIGRATIONS, mysql/init.MIGRATIONS), since only a migration
changes a table that already exists. A column the domain does not see (like request_hash) goes in
SELECT_COLUMNS or INSERT_COLUMNS instead.
"""

import json
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any, NamedTuple

from pixyproxy.domain.models import ImageDetail, ImagePage, PagePosition
from pixyproxy.domain.usage import UsageEntry, UsageTotal

# The columns of `images` that ImageDetail maps to.
DETAIL_COLUMNS = (
    "guid",
    "filename",
    "prompt",
    "created_at",
    "content_type",
    "size_bytes",
    "width",
    "height",
    "model",
    "size",
    "quality",
    "revised_prompt",
    "usage_json",
    "sha256",
    "background",
    "output_format",
    "output_compression",
    "moderation",
    "safety_identifier",
    "parent_guid",
    "mask_guid",
    "reference_guids_json",
    "owner",
    "estimated_cost_usd",
    "provider",
    "deployment",
    "attempts",
)
# Every SELECT returns these, in this order: the keyset id and the idempotency hash, then the detail.
SELECT_COLUMNS = ("id", "request_hash", *DETAIL_COLUMNS)
INSERT_COLUMNS = (*DETAIL_COLUMNS, "updated_at", "idempotency_key", "request_hash")
SELECT_LIST = ", ".join(SELECT_COLUMNS)
INSERT_LIST = ", ".join(INSERT_COLUMNS)

# Guids per `guid IN (...)` statement: far below every server's limit on parameters and packet size.
IN_LIST_CHUNK = 500

_DETAIL_START = len(SELECT_COLUMNS) - len(DETAIL_COLUMNS)


class StoredImage(NamedTuple):
    """One SELECTed row: the detail, its keyset id and the request hash stored with its idempotency key."""

    detail: ImageDetail
    id: int
    request_hash: str | None


def detail_to_row(
    detail: ImageDetail, idempotency_key: str | None = None, request_hash: str | None = None
) -> dict[str, Any]:
    """The INSERT_COLUMNS values of `detail`; created_at (and updated_at) as an aware UTC datetime,
    which each adapter converts to its own storage form."""
    row = detail.model_dump(exclude={"usage", "reference_guids"})
    for name in ("guid", "parent_guid", "mask_guid"):
        row[name] = str(row[name]) if row[name] is not None else None
    references = detail.reference_guids
    row["reference_guids_json"] = json.dumps([str(g) for g in references]) if references is not None else None
    row["created_at"] = row["updated_at"] = detail.created_at.astimezone(UTC)
    row["usage_json"] = json.dumps(detail.usage, separators=(",", ":")) if detail.usage is not None else None
    row["idempotency_key"] = idempotency_key
    row["request_hash"] = request_hash
    return row


def row_to_detail(row: dict[str, Any]) -> ImageDetail:
    """An ImageDetail from DETAIL_COLUMNS values; created_at may be ISO text or a (naive UTC) datetime."""
    row = dict(row)
    usage = row.pop("usage_json", None)
    row["usage"] = json.loads(usage) if usage else None
    references = row.pop("reference_guids_json", None)
    row["reference_guids"] = json.loads(references) if references else None
    created = row["created_at"]
    if isinstance(created, str):
        created = datetime.fromisoformat(created)
    row["created_at"] = created if created.tzinfo else created.replace(tzinfo=UTC)
    return ImageDetail.model_validate(row)


def stored_image(row: Sequence[Any]) -> StoredImage:
    """A row in SELECT_COLUMNS order."""
    detail = row_to_detail(dict(zip(DETAIL_COLUMNS, row[_DETAIL_START:], strict=True)))
    return StoredImage(detail=detail, id=row[0], request_hash=row[1])


def page_from_rows(rows: Sequence[Sequence[Any]], limit: int) -> ImagePage:
    """The page of a list query that asked for `limit + 1` rows: one more than `limit` means a next page."""
    stored = [stored_image(row) for row in rows[:limit]]
    next_position = None
    if len(rows) > limit:
        last = stored[-1]
        next_position = PagePosition(created_at=last.detail.created_at, id=last.id)
    return ImagePage(items=[s.detail for s in stored], next=next_position)


# The `usage_events` table: one row per provider call, kept when its images are deleted. Totals per
# owner, model and provider over a period are one GROUP BY; each adapter adds its markers for the
# bounds (and the owner).
USAGE_COLUMNS = (
    "created_at",
    "owner",
    "model",
    "operation",
    "images",
    "input_tokens",
    "output_tokens",
    "estimated_cost_usd",
    "provider",
)
USAGE_INSERT_LIST = ", ".join(USAGE_COLUMNS)
USAGE_SELECT = (
    "SELECT owner, model, provider, COALESCE(SUM(images), 0), COALESCE(SUM(input_tokens), 0), "
    "COALESCE(SUM(output_tokens), 0), COALESCE(SUM(estimated_cost_usd), 0) FROM usage_events"
)


def usage_to_row(entry: UsageEntry) -> dict[str, Any]:
    row = {name: getattr(entry, name) for name in USAGE_COLUMNS}
    row["created_at"] = entry.created_at.astimezone(UTC)
    return row


def usage_totals(rows: Sequence[Sequence[Any]]) -> list[UsageTotal]:
    totals = [
        UsageTotal(
            key=owner,
            model=model,
            provider=provider,
            images=int(images),  # SUM may come back as Decimal (MySQL)
            input_tokens=int(spent_in),
            output_tokens=int(spent_out),
            total_tokens=int(spent_in) + int(spent_out),
            estimated_cost_usd=round(float(cost), 6),
        )
        for owner, model, provider, images, spent_in, spent_out, cost in rows
    ]
    return sorted(totals, key=lambda t: (t.key is not None, t.key or "", t.model or "", t.provider or ""))


def chunks(values: Sequence[str], size: int = IN_LIST_CHUNK) -> Iterator[Sequence[str]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]
