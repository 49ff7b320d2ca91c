"""MySQL's word index: a posting table of our own, one row per word of each image's prompt.

A FULLTEXT index gathers every match of a word and then sorts them, which took seconds for a common word
at 10^6 rows. Here each word keeps its images in list order instead: the key (word, image_created_at,
image_id) gives the newest page of a word straight off the index, as an unfiltered page comes off
ix_images_created_at_id, and each further word is one point lookup per candidate. The rarest word leads
(rarest_first). Words are split in Python by domain/search.py's rules, so MySQL finds exactly what SQLite
and the in-memory store find. Postings are written in the image's own transaction and go with it
(ON DELETE CASCADE).
"""

import logging
from datetime import datetime
from typing import Any

import orjson

from pixyproxy.adapters.rows import SELECT_COLUMNS
from pixyproxy.domain.search import MAX_WORDS, ImageFilter, words_of

log = logging.getLogger(__name__)

# A longer word is indexed by its first WORD_KEY_LENGTH characters; every hit is checked exactly anyway.
WORD_KEY_LENGTH = 100
CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS image_words (
    word VARCHAR(100) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    image_created_at DATETIME(6) NOT NULL,
    image_id BIGINT NOT NULL,
    PRIMARY KEY (word, image_created_at DESC, image_id DESC),
    KEY ix_image_words_image_id (image_id),
    CONSTRAINT fk_image_words_image FOREIGN KEY (image_id) REFERENCES images (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin
"""
INSERT_POSTING = (
    "INSERT INTO image_words (word, image_created_at, image_id) "
    "VALUES (%(word)s, %(created_at)s, %(image_id)s)"
)
# The backfill: a batch of stored prompts is split here, and its [image_id, word] pairs go back as one
# JSON array (one statement, so whole images are committed at a time, in id order); the server adds each
# image's time. A backfill cut short (the init timeout, a crash) resumes after the last image posted.
NEXT_PROMPTS = "SELECT id, prompt FROM images WHERE id > %(after)s ORDER BY id LIMIT %(limit)s"
BACKFILL_POSTINGS = (
    "INSERT IGNORE INTO image_words (word, image_created_at, image_id) "
    "SELECT posted.word, images.created_at, images.id FROM JSON_TABLE(%(postings)s, '$[*]' COLUMNS ("
    "image_id BIGINT PATH '$[0]', word VARCHAR(100) CHARACTER SET utf8mb4 PATH '$[1]')) posted "
    "JOIN images ON images.id = posted.image_id"
)
POSTED_UP_TO = "SELECT COALESCE(MAX(image_id), 0) FROM image_words"
BACKFILL_BATCH = 1000  # prompts read at a time
BACKFILL_STATEMENT_PAIRS = 50_000  # pairs per statement, well inside max_allowed_packet

# A page of one word's images, each further word joined by its full key. Conditions are constant text
# or the constant TRUE; every value is a parameter (w0..w7 the words, the rest as in the plain list).
_IMAGE_LIST = ", ".join("images." + column for column in SELECT_COLUMNS)
PAGE_OF_WORDS = f"SELECT JSON_ARRAY({_IMAGE_LIST}) FROM image_words w0 FORCE INDEX (PRIMARY)"  # noqa: S608
ALSO_HAS_WORD = tuple(
    f"STRAIGHT_JOIN image_words w{n} ON w{n}.word = %(w{n})s "
    f"AND w{n}.image_created_at = w0.image_created_at AND w{n}.image_id = w0.image_id"
    for n in range(1, MAX_WORDS)
)
THE_IMAGE = "STRAIGHT_JOIN images ON images.id = w0.image_id WHERE w0.word = %(w0)s"
MODEL_IS = "images.model = %(model)s"
OWNER_IS = "images.owner = %(owner)s"
CREATED_AFTER = "w0.image_created_at > %(created_after)s"
CREATED_BEFORE = "w0.image_created_at < %(created_before)s"
KEYSET_AFTER = (
    "(w0.image_created_at < %(created_at)s "
    "OR (w0.image_created_at = %(created_at)s AND w0.image_id < %(id)s))"
)
NEWEST_FIRST = "ORDER BY w0.image_created_at DESC, w0.image_id DESC LIMIT %(limit)s"
TRUE = "TRUE"

# How rare each word is where the page starts: the time of its PROBE_DEPTH-th posting from there (NULL:
# fewer than that many). The word whose postings reach back furthest is the rarest there.
PROBE_DEPTH = 64
PROBE_WORD = tuple(
    f"(SELECT image_created_at FROM image_words FORCE INDEX (PRIMARY) WHERE word = %(w{n})s"  # noqa: S608
    for n in range(MAX_WORDS)
)
PROBE_CREATED_AFTER = "image_created_at > %(created_after)s"
PROBE_CREATED_BEFORE = "image_created_at < %(created_before)s"
PROBE_KEYSET_AFTER = (
    "(image_created_at < %(created_at)s OR (image_created_at = %(created_at)s AND image_id < %(id)s))"
)
PROBE_END = f"ORDER BY image_created_at DESC, image_id DESC LIMIT 1 OFFSET {PROBE_DEPTH})"


def key_of(word: str) -> str:
    return word[:WORD_KEY_LENGTH]


def cut(word: str) -> bool:
    """Whether the index holds only the start of this word (so a hit may be another word)."""
    return len(word) > WORD_KEY_LENGTH


def postings(image_id: int, created_at: datetime, prompt: str) -> list[dict[str, Any]]:
    """The rows of image_words for one image (created_at as the images row holds it)."""
    keys = dict.fromkeys(key_of(word) for word in words_of(prompt))
    return [{"word": key, "created_at": created_at, "image_id": image_id} for key in keys]


def page_statement(words: int, filters: ImageFilter, keyset: bool) -> str:
    """The SELECT of one page for `words` words (w0 leading), with the filters that are set."""
    f = filters
    return (
        f"{PAGE_OF_WORDS} {' '.join(ALSO_HAS_WORD[: int(words) - 1])} {THE_IMAGE} "
        f"AND {MODEL_IS if f.model else TRUE} AND {OWNER_IS if f.owner else TRUE} "
        f"AND {CREATED_AFTER if f.created_after else TRUE} "
        f"AND {CREATED_BEFORE if f.created_before else TRUE} "
        f"AND {KEYSET_AFTER if keyset else TRUE} {NEWEST_FIRST}"
    )


def probe_statement(words: int, filters: ImageFilter, keyset: bool) -> str:
    """One row: for each word, where its PROBE_DEPTH-th posting from the page's start lies."""
    where = (
        f"{PROBE_CREATED_AFTER if filters.created_after else TRUE} "
        f"AND {PROBE_CREATED_BEFORE if filters.created_before else TRUE} "
        f"AND {PROBE_KEYSET_AFTER if keyset else TRUE}"
    )
    return "SELECT " + ", ".join(f"{probe} AND {where} {PROBE_END}" for probe in PROBE_WORD[: int(words)])


def rarest_first(words: tuple[str, ...], reach: tuple[datetime | None, ...]) -> tuple[str, ...]:
    """The words from rarest to commonest where the page starts: the one reaching back furthest (None:
    fewer postings than the probe depth, rarer still) leads, and each later word is looked up only for
    the candidates the rarer ones let through. Ties keep the query's order."""
    order = sorted(range(len(words)), key=lambda n: (reach[n] is not None, reach[n] or datetime.min))
    return tuple(words[n] for n in order)


def word_params(words: tuple[str, ...]) -> dict[str, str]:
    return {f"w{n}": key_of(word) for n, word in enumerate(words)}


async def backfill(cursor) -> None:
    """Index the words of every image already stored (a database from before this index)."""
    await cursor.execute(POSTED_UP_TO)
    (after,) = await cursor.fetchone()
    resumed, images, pairs = after, 0, 0
    while True:
        await cursor.execute(NEXT_PROMPTS, {"after": after, "limit": BACKFILL_BATCH})
        rows = await cursor.fetchall()
        if not rows:
            break
        batch: list[tuple[int, str]] = []
        for image_id, prompt in rows:
            batch += [(image_id, key) for key in dict.fromkeys(key_of(w) for w in words_of(prompt))]
            if len(batch) >= BACKFILL_STATEMENT_PAIRS:
                pairs += await _post(cursor, batch)
                batch = []
        pairs += await _post(cursor, batch)
        after, images = rows[-1][0], images + len(rows)
        if images % 100_000 < BACKFILL_BATCH:
            log.info("indexing the words of stored images: %d done, up to id %d", images, after)
    log.info(
        "indexed the words of %d stored images (%d postings; resumed after id %d)", images, pairs, resumed
    )


async def _post(cursor, batch: list[tuple[int, str]]) -> int:
    if batch:
        await cursor.execute(BACKFILL_POSTINGS, {"postings": orjson.dumps(batch).decode()})
    return len(batch)
