"""What an error means over HTTP, whatever shape it is then written in (ours, or OpenAI's on /v1)."""

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Described:
    status: int
    code: str
    detail: str
    headers: dict[str, str] = field(default_factory=dict)
