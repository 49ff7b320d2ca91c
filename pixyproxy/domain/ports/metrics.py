from typing import Protocol


class MetricsRecorder(Protocol):
    """Counts and times what the service does; `render` is what a scrape of /metrics answers."""

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None: ...

    def observe_generation(self, model: str, outcome: str, seconds: float) -> None: ...

    def observe_provider_attempt(self, provider: str, deployment: str, outcome: str, seconds: float) -> None:
        """One call to one deployment of the catalogue (a generation may make several: fallbacks)."""
        ...

    def add_stored(self, size_bytes: int) -> None: ...

    def add_usage(
        self, key: str, images: int, input_tokens: int, output_tokens: int, cost_usd: float
    ) -> None:
        """One provider call's usage by API key name (`-` with keys off): names come from the configured
        keys only, so the label's values stay few."""
        ...

    def add_budget_refusal(self, key: str) -> None: ...

    def observe_webhook(self, outcome: str, seconds: float) -> None:
        """One webhook attempt: `delivered`, `retrying` (it will be tried again) or `failed` (given up)."""
        ...

    def render(self) -> tuple[bytes, str]:
        """The exposition body and its content type."""
        ...
