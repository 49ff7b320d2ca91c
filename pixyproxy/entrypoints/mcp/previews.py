"""The previews a generation streams, kept a while so an assistant can read them as images: each is
named in its progress notification as `preview://{job}/{index}` and read with resources/read by the
same key. Kept in the process that ran the call, the newest few, for a few minutes."""

import time
from collections import OrderedDict
from dataclasses import dataclass

PREVIEW_URI = "preview://"
KEEP_SECONDS = 600.0
KEEP_AT_MOST = 200


@dataclass(frozen=True)
class Preview:
    """One streamed preview: its name (`{job}/{index}`), bytes and MIME type."""

    name: str
    data: bytes
    mime_type: str


class PreviewStore:
    def __init__(self, keep_seconds: float = KEEP_SECONDS, keep_at_most: int = KEEP_AT_MOST) -> None:
        self.keep_seconds = keep_seconds
        self.keep_at_most = keep_at_most
        self._kept: OrderedDict[tuple[str | None, str], tuple[float, Preview]] = OrderedDict()

    def put(self, owner: str | None, preview: Preview) -> str:
        """Keep `preview` for `owner` (an API key's name; None with keys off); its URI."""
        uri = PREVIEW_URI + preview.name
        self._kept[(owner, uri)] = (time.monotonic() + self.keep_seconds, preview)
        self._kept.move_to_end((owner, uri))
        while len(self._kept) > self.keep_at_most:
            self._kept.popitem(last=False)
        return uri

    def get(self, owner: str | None, uri: str) -> Preview | None:
        """The preview at `uri` if `owner` was given it and it is still kept."""
        now = time.monotonic()
        for key in [key for key, (until, _) in self._kept.items() if until <= now]:
            del self._kept[key]
        kept = self._kept.get((owner, uri))
        return kept[1] if kept is not None else None
