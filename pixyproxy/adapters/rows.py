"""ImageDetail <-> plain row dicts, shared by the SQL adapters so conversion lives in one place."""

import json
from datetime import UTC, datetime
from typing import Any

from pixyproxy.domain.models import ImageDetail

# The columns of `images` that ImageDetail maps to, in one order for SELECT and INSERT.
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
)


def detail_to_row(detail: ImageDetail) -> dict[str, Any]:
    row = detail.model_dump(exclude={"usage"})
    row["guid"] = str(detail.guid)
    row["created_at"] = detail.created_at.astimezone(UTC)
    row["usage_json"] = json.dumps(detail.usage, separators=(",", ":")) if detail.usage is not None else None
    return row


def row_to_detail(row: dict[str, Any]) -> ImageDetail:
    row = dict(row)
    usage = row.pop("usage_json", None)
    row["usage"] = json.loads(usage) if usage else None
    created = row["created_at"]
    if isinstance(created, str):
        created = datetime.fromisoformat(created)
    row["created_at"] = created if created.tzinfo else created.replace(tzinfo=UTC)
    return ImageDetail.model_validate(row)
