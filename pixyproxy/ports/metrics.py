from typing import Protocol


class MetricsRecorder(Protocol):
    """Counts and times what the service does; `render` is what a scrape of /metrics answers."""

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None: ...

    def observe_generation(self, model: str, outcome: str, seconds: float) -> None: ...

    def add_stored(self, size_bytes: int) -> None: ...

    def render(self) -> tuple[bytes, str]:
        """The exposition body and its content type."""
        ...
