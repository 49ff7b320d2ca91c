"""The word index both SQL stores keep: a posting table of their own, one row per word of each prompt.

A full-text index (MySQL's FULLTEXT, SQLite's FTS5) gathers every match of a word and then sorts them by
time, which took seconds for a common word at 10^6 rows. Here each word keeps its images in list order:
the key (word, image_created_at, image_id) gives a word's newest page straight off the index, as an
unfiltered page comes off the created_at index, and each further word is one key lookup per candidate.
The rarest word where the page starts leads (rarest_first, from a probe of each word's postings). Words
are split in Python by domain/search.py's rules, so every store finds the same images.

Parameters are :name on both (SQLAlchemy binds them); where the dialects still differ (index hints, the
join that keeps the order written, the keyset's spelling) the piece sits in a dict keyed by "mysql" or
"sqlite". The store is adapters/sql/images.py; the baseline revision creates and fills the table.
"""

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any

from pixyproxy.adapters.sql.dialect import END_PACK, PACK_ROW
from pixyproxy.adapters.sql.image_rows import SELECT_COLUMNS
from pixyproxy.domain.search import MAX_WORDS, ImageFilter, matches, words_of

# A longer word is indexed by its first WORD_KEY_LENGTH characters (and its hits checked exactly).
WORD_KEY_LENGTH = 100
DIALECTS = ("mysql", "sqlite")
_IMAGE_LIST = ", ".join("images." + column for column in SELECT_COLUMNS)
_PROMPT = SELECT_COLUMNS.index("prompt")
_ROW = {d: f"{PACK_ROW[d]}{_IMAGE_LIST}{END_PACK[d]}" for d in DIALECTS}  # read as images.py reads its own
_BY_KEY = {"mysql": " FORCE INDEX (PRIMARY)", "sqlite": ""}  # SQLite picks the primary key itself
_JOIN = {"mysql": "STRAIGHT_JOIN", "sqlite": "CROSS JOIN"}  # both: join in the order written
_WORD = {d: tuple(f":w{n}" for n in range(MAX_WORDS)) for d in DIALECTS}
_MARK = {
    d: {name: f":{name}" for name in ("model", "owner", "created_after", "created_before", "limit")}
    for d in DIALECTS
}
TRUE = {"mysql": "TRUE", "sqlite": "1"}

# A page: w0 the leading word, each further word joined by its full key, then the image.
PAGE_OF_WORDS = {d: f"SELECT {_ROW[d]} FROM image_words w0{_BY_KEY[d]}" for d in DIALECTS}  # noqa: S608
ALSO_HAS_WORD = {
    d: tuple(
        f"{_JOIN[d]} image_words w{n} ON w{n}.word = {_WORD[d][n]} "
        f"AND w{n}.image_created_at = w0.image_created_at AND w{n}.image_id = w0.image_id"
        for n in range(1, MAX_WORDS)
    )
    for d in DIALECTS
}
THE_IMAGE = {
    d: f"{_JOIN[d]} images ON images.id = w0.image_id WHERE w0.word = {_WORD[d][0]}" for d in DIALECTS
}
MODEL_IS = {d: f"images.model = {_MARK[d]['model']}" for d in DIALECTS}
OWNER_IS = {d: f"images.owner = {_MARK[d]['owner']}" for d in DIALECTS}
NEWEST_FIRST = {
    d: f"ORDER BY w0.image_created_at DESC, w0.image_id DESC LIMIT {_MARK[d]['limit']}" for d in DIALECTS
}

# The time window and the keyset position, spelled for each place the list order is read from: the
# leading posting, the image row, and inside a probe the bare columns of either. The keyset is spelled
# so each server reads it as a range of the key (SQLite: a row value; MySQL: the OR form).
_ORDER = {
    "w0": ("w0.image_created_at", "w0.image_id"),
    "images": ("images.created_at", "images.id"),
    "posting": ("image_created_at", "image_id"),
    "image": ("created_at", "id"),
}
CREATED_AFTER = {
    place: {d: f"{_ORDER[place][0]} > {_MARK[d]['created_after']}" for d in DIALECTS} for place in _ORDER
}
CREATED_BEFORE = {
    place: {d: f"{_ORDER[place][0]} < {_MARK[d]['created_before']}" for d in DIALECTS} for place in _ORDER
}
KEYSET_AFTER = {
    place: {
        "mysql": f"({_ORDER[place][0]} < :created_at "
        f"OR ({_ORDER[place][0]} = :created_at AND {_ORDER[place][1]} < :id))",
        "sqlite": f"({_ORDER[place][0]}, {_ORDER[place][1]}) < (:created_at, :id)",
    }
    for place in _ORDER
}

# A page led by the model or the owner instead (rarer there than any word: one tenant's images among
# many): that column's index gives the images in list order, and every word is a key lookup.
COLUMNS = ("model", "owner")
_INDEX = {
    "model": {
        "mysql": " FORCE INDEX (ix_images_model_created_at_id)",
        "sqlite": " INDEXED BY images_model_created_at_id",
    },
    "owner": {
        "mysql": " FORCE INDEX (ix_images_owner_created_at_id)",
        "sqlite": " INDEXED BY images_owner_created_at_id",
    },
}
PAGE_LED_BY = {
    column: {
        d: f"SELECT {_ROW[d]} FROM images{_INDEX[column][d]} {_JOIN[d]} image_words w0 "  # noqa: S608
        f"ON w0.word = {_WORD[d][0]} AND w0.image_created_at = images.created_at AND w0.image_id = images.id"
        for d in DIALECTS
    }
    for column in COLUMNS
}
IMAGE_NEWEST_FIRST = {
    d: f"ORDER BY images.created_at DESC, images.id DESC LIMIT {_MARK[d]['limit']}" for d in DIALECTS
}

# How rare each word is where the page starts: the time of its PROBE_DEPTH-th posting from there (NULL:
# fewer than that many). The word whose postings reach back furthest is the rarest there.
PROBE_DEPTH = 64
PROBE_WORD = {
    d: tuple(
        f"(SELECT image_created_at FROM image_words{_BY_KEY[d]} WHERE word = {_WORD[d][n]}"  # noqa: S608
        for n in range(MAX_WORDS)
    )
    for d in DIALECTS
}
PROBE_END = f"ORDER BY image_created_at DESC, image_id DESC LIMIT 1 OFFSET {PROBE_DEPTH})"
PROBE_COLUMN = {
    column: {
        d: f"(SELECT created_at FROM images{_INDEX[column][d]} WHERE {column} = {_MARK[d][column]}"  # noqa: S608
        for d in DIALECTS
    }
    for column in COLUMNS
}
PROBE_IMAGE_END = f"ORDER BY created_at DESC, id DESC LIMIT 1 OFFSET {PROBE_DEPTH})"


def key_of(word: str) -> str:
    return word[:WORD_KEY_LENGTH]


def cut(word: str) -> bool:
    """Whether the index holds only the start of this word (so a hit may be another word)."""
    return len(word) > WORD_KEY_LENGTH


def keys_of(prompt: str) -> list[str]:
    """The posting keys of one prompt, each once."""
    return list(dict.fromkeys(key_of(word) for word in words_of(prompt)))


def posting_rows(image_id: int, created_at: Any, prompt: str) -> list[dict[str, Any]]:
    """The rows of image_words for one image (created_at as its store holds the image's)."""
    return [{"word": key, "created_at": created_at, "image_id": image_id} for key in keys_of(prompt)]


def word_params(words: tuple[str, ...]) -> dict[str, str]:
    return {f"w{n}": key_of(word) for n, word in enumerate(words)}


def page_statement(dialect: str, words: int, filters: ImageFilter, keyset: bool, lead: str = "word") -> str:
    """The SELECT of one page for `words` words, with the filters that are set: led by w0's postings,
    or by the `lead` column's index ("model", "owner") with every word looked up."""
    f = filters
    true = TRUE[dialect]
    place = "images" if lead in COLUMNS else "w0"
    also = " ".join(ALSO_HAS_WORD[dialect][: int(words) - 1])
    head = (
        f"{PAGE_LED_BY[lead][dialect]} {also} WHERE"
        if lead in COLUMNS
        else f"{PAGE_OF_WORDS[dialect]} {also} {THE_IMAGE[dialect]} AND"
    )
    return (
        f"{head} {MODEL_IS[dialect] if f.model else true} AND {OWNER_IS[dialect] if f.owner else true} "
        f"AND {CREATED_AFTER[place][dialect] if f.created_after else true} "
        f"AND {CREATED_BEFORE[place][dialect] if f.created_before else true} "
        f"AND {KEYSET_AFTER[place][dialect] if keyset else true} "
        f"{IMAGE_NEWEST_FIRST[dialect] if lead in COLUMNS else NEWEST_FIRST[dialect]}"
    )


def probe_statement(dialect: str, words: int, filters: ImageFilter, keyset: bool) -> str:
    """One row: for each word, then the model and the owner when set, where its PROBE_DEPTH-th entry
    from the page's start lies."""
    f = filters
    true = TRUE[dialect]
    where = {
        place: f"{CREATED_AFTER[place][dialect] if f.created_after else true} "
        f"AND {CREATED_BEFORE[place][dialect] if f.created_before else true} "
        f"AND {KEYSET_AFTER[place][dialect] if keyset else true}"
        for place in ("posting", "image")
    }
    probes = [f"{probe} AND {where['posting']} {PROBE_END}" for probe in PROBE_WORD[dialect][: int(words)]]
    for column in COLUMNS:
        if getattr(f, column) is not None:
            probes.append(f"{PROBE_COLUMN[column][dialect]} AND {where['image']} {PROBE_IMAGE_END}")
    return "SELECT " + ", ".join(probes)


def plan(words: tuple[str, ...], filters: ImageFilter, reach: Sequence[Any]) -> tuple[str, tuple[str, ...]]:
    """What leads the page ("word", "model" or "owner": whichever reaches back furthest) and the words
    in the order they are read, from the probe's row (the words' entries, then the columns set)."""
    columns = [column for column in COLUMNS if getattr(filters, column) is not None]
    ordered = rarest_first(words, reach[: len(words)])
    candidates = [("word", reach[words.index(ordered[0])]), *zip(columns, reach[len(words) :], strict=True)]
    lead = min(candidates, key=lambda c: (c[1] is not None, c[1] or datetime.min))[0]
    return lead, ordered


def rarest_first(words: tuple[str, ...], reach: Sequence[Any]) -> tuple[str, ...]:
    """The words from rarest to commonest where the page starts: the one reaching back furthest (None:
    fewer postings than the probe depth, rarer still) leads, and each later word is looked up only for
    the candidates the rarer ones let through. Ties keep the query's order."""
    order = sorted(range(len(words)), key=lambda n: (reach[n] is not None, reach[n] or datetime.min))
    return tuple(words[n] for n in order)


async def word_page_rows(
    dialect: str,
    limit: int,
    after: Any,
    filters: ImageFilter,
    *,
    params: Callable[[int, Any], dict[str, Any]],
    probe: Callable[[str, dict[str, Any]], Awaitable[Sequence[Any]]],
    page: Callable[[str, dict[str, Any]], Awaitable[list[Sequence[Any]]]],
    position_of: Callable[[Sequence[Any]], Any],
) -> list[Sequence[Any]]:
    """Up to `limit + 1` image rows (SELECT_COLUMNS order) holding every word, newest first, from
    `after` on. `params(limit, position)` gives the filter and keyset parameters, `probe` runs the
    probe (its one row), `page` a page statement (its rows), `position_of` a row's keyset position.
    A word longer than the key is cut there: then each hit is checked against the prompt, paging on
    while the checks leave the page short."""
    words, lead = filters.words, "word"
    exact = not any(cut(word) for word in words)
    if len(words) > 1 or filters.model is not None or filters.owner is not None:
        statement = probe_statement(dialect, len(words), filters, after is not None)
        reach = await probe(statement, {**params(0, after), **word_params(words)})
        lead, words = plan(words, filters, reach)
    found: list[Sequence[Any]] = []
    position = after
    while True:
        wanted = limit + 1 - len(found)
        statement = page_statement(dialect, len(words), filters, position is not None, lead)
        rows = await page(statement, {**params(wanted, position), **word_params(words)})
        found += rows if exact else [row for row in rows if matches(row[_PROMPT], filters.words)]
        if len(found) > limit or len(rows) < wanted:
            return found
        position = position_of(rows[-1])
