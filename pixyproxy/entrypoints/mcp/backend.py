"""What the MCP tools need of PixyProxy, whoever provides it: the use cases in this process (calls.py)
or a running server over HTTP (remote.py). Details travel as the HTTP API's JSON (plain dicts)."""

from typing import Any, Protocol

from pixyproxy.entrypoints.mcp.previews import Preview


class ReportProgress(Protocol):
    """What a long call reports as it goes: progress of total, a message, and a streamed preview
    (which the server keeps and names in the message, for the client to read as an image)."""

    async def __call__(
        self, progress: float, total: float | None, message: str | None, preview: Preview | None = None
    ) -> None: ...


class ImageTools(Protocol):
    """Every method raises tools.ToolFailure for what the caller should be told (the HTTP API's
    message); anything else is a fault of ours."""

    # Whose previews these tools may read back: the API key's name (None: keys off, or the one user of
    # a stdio server).
    owner: str | None

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
