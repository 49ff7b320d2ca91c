"""What the request log's END line says of a generation: the provider that answered last and the
outcome. The log middleware puts a fresh note in the ContextVar for each request; the routing generator
writes into it (a mutable note, so the write is seen whatever context the handler ran in)."""

from contextvars import ContextVar

generation_note: ContextVar[dict[str, str] | None] = ContextVar("generation_note", default=None)


def note_generation(provider: str, outcome: str) -> None:
    note = generation_note.get()
    if note is not None:
        note["provider"], note["outcome"] = provider, outcome
