"""What the MCP tools need of PixyProxy, whoever provides it: the use cases in this process (calls.py)
or a running server over HTTP (remote.py). Details travel as the HTTP API's JSON (plain dicts)."""

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

# progress, total, message: what a long call reports as it goes.
ReportProgress = Callable[[float, float | None, str | None], Awaitable[None]]


class ImageTools(Protocol):
    """Every method raises tools.ToolFailure for what the caller should be told (the HTTP API's
    message); anything else is a fault of ours."""

    async def generate(
        self, arguments: dict[str, Any], progress: ReportProgress | None
    ) -> dict[str, Any]: ...

    async def edit(self, guid: str, arguments: dict[str, Any]) -> dict[str, Any]: ...

    async def get(self, guid: str) -> dict[str, Any]: ...

    async def search(self, arguments: dict[str, Any]) -> list[dict[str, Any]]: ...

    async def page(self, cursor: str | None, limit: int) -> tuple[list[dict[str, Any]], str | None]: ...

    async def models(self) -> list[dict[str, Any]]: ...

    async def delete(self, guid: str) -> None: ...

    async def usage(self, since: str | None, until: str | None) -> dict[str, Any]: ...

    async def preview(self, detail: dict[str, Any], width: int) -> bytes:
        """The image as WebP, scaled down to `width` (never enlarged)."""
        ...

    async def content(self, guid: str) -> tuple[bytes, str]:
        """The image's bytes and their MIME type."""
        ...

    async def link(self, detail: dict[str, Any]) -> str:
        """A URL serving the full image: presigned on S3, the content URL otherwise."""
        ...
