"""Filters on the image list: words of the prompt, the model, a window of creation times.

Every store applies the same meaning: an image matches `words` when its prompt holds each word as a whole
word, in any case and with or without accents. Words shorter than MIN_WORD_LENGTH are dropped, the same
everywhere: they would be in most prompts, and no index keeps them.
"""

import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime

from pixyproxy.domain.errors import InvalidImageRequest
from pixyproxy.domain.instants import parse_instant

MIN_WORD_LENGTH = 3
MAX_WORDS = 8
MAX_QUERY_LENGTH = 200
MAX_MODEL_LENGTH = 100
_WORD = re.compile(r"[^\W_]+")  # letters and digits: what FTS5's unicode61 calls a token
# RFC 3339 date-time: a full date, a time, and a zone (Z or +hh:mm); no bare dates, no epoch numbers.


@dataclass(frozen=True)
class ImageFilter:
    """What a list is narrowed to; every field None (or empty) narrows nothing."""

    words: tuple[str, ...] = ()  # folded (see fold()), each at least MIN_WORD_LENGTH long
    model: str | None = None
    created_after: datetime | None = None  # strictly after
    created_before: datetime | None = None  # strictly before
    owner: str | None = None  # a user key's name: its own images only (domain/tenancy.py)

    @property
    def empty(self) -> bool:
        return (
            not self.words
            and self.model is None
            and not self.created_after
            and not self.created_before
            and self.owner is None
        )


NO_FILTER = ImageFilter()


def fold(text: str) -> str:
    """Case and accents out: how words are compared (FTS5 unicode61 remove_diacritics, MySQL _ci)."""
    decomposed = unicodedata.normalize("NFKD", text.lower())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def words_of(text: str) -> list[str]:
    """The searchable words of a prompt or a query, folded."""
    return [w for w in _WORD.findall(fold(text)) if len(w) >= MIN_WORD_LENGTH]


def matches(detail_prompt: str, words: tuple[str, ...]) -> bool:
    """The reference meaning of a word search (the in-memory store uses it; SQL stores use an index)."""
    present = set(words_of(detail_prompt))
    return all(word in present for word in words)


def _instant(name: str, value: str | None) -> datetime | None:
    return None if value is None else parse_instant(name, value)


def parse_filter(
    q: str | None = None,
    model: str | None = None,
    created_after: str | None = None,
    created_before: str | None = None,
) -> ImageFilter:
    """A client's filter parameters, checked; InvalidImageRequest (422) naming the parameter otherwise."""
    words: tuple[str, ...] = ()
    if q is not None:
        if len(q) > MAX_QUERY_LENGTH:
            raise InvalidImageRequest(f"query.q: at most {MAX_QUERY_LENGTH} characters")
        found = list(dict.fromkeys(words_of(q)))
        if not found:
            raise InvalidImageRequest(
                f"query.q: give at least one word of {MIN_WORD_LENGTH} or more letters or digits"
            )
        if len(found) > MAX_WORDS:
            raise InvalidImageRequest(f"query.q: at most {MAX_WORDS} words")
        words = tuple(found)
    if model is not None and not (0 < len(model) <= MAX_MODEL_LENGTH and model.isprintable()):
        raise InvalidImageRequest(f"query.model: 1 to {MAX_MODEL_LENGTH} printable characters")
    after = _instant("created_after", created_after)
    before = _instant("created_before", created_before)
    return ImageFilter(words=words, model=model, created_after=after, created_before=before)
