"""MySQL's side of the word index (adapters/word_postings.py): the posting table, how a new image's
rows are inserted, and the backfill that indexes the images stored before it. The postings are written
in the image's own transaction and go with it (ON DELETE CASCADE).
"""

import logging

import orjson

from pixyproxy.adapters.word_postings import WORD_KEY_LENGTH, keys_of

log = logging.getLogger(__name__)

CREATE_TABLE = f"""
CREATE TABLE IF NOT EXISTS image_words (
    word VARCHAR({WORD_KEY_LENGTH}) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
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
# A posting already there is kept as it is (a no-op update: INSERT IGNORE would raise a warning a row).
BACKFILL_POSTINGS = (
    "INSERT INTO image_words (word, image_created_at, image_id) "  # noqa: S608
    "SELECT posted.word, images.created_at, images.id FROM JSON_TABLE(%(postings)s, '$[*]' COLUMNS ("
    f"image_id BIGINT PATH '$[0]', word VARCHAR({WORD_KEY_LENGTH}) CHARACTER SET utf8mb4 "
    "PATH '$[1]')) posted JOIN images ON images.id = posted.image_id "
    "ON DUPLICATE KEY UPDATE image_id = image_words.image_id"
)
POSTED_UP_TO = "SELECT COALESCE(MAX(image_id), 0) FROM image_words"
BACKFILL_BATCH = 1000  # prompts read at a time
BACKFILL_STATEMENT_PAIRS = 50_000  # pairs per statement, well inside max_allowed_packet


TABLE_EXISTS = (
    "SELECT COUNT(*) FROM information_schema.tables "
    "WHERE table_schema = DATABASE() AND table_name = 'image_words'"
)


async def create_table(cursor) -> None:
    """The posting table, asked for first: on a migration resumed after a crash, CREATE ... IF NOT
    EXISTS would log a server note (a Python warning through aiomysql)."""
    await cursor.execute(TABLE_EXISTS)
    if not (await cursor.fetchone())[0]:
        await cursor.execute(CREATE_TABLE)


async def backfill(cursor, from_start: bool = False) -> int:
    """Index the words of every image already stored (a database from before this index), resuming
    after the last image posted unless `from_start`; returns how many images it read."""
    after = 0
    if not from_start:
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
            batch += [(image_id, key) for key in keys_of(prompt)]
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
    return images


async def _post(cursor, batch: list[tuple[int, str]]) -> int:
    if batch:
        await cursor.execute(BACKFILL_POSTINGS, {"postings": orjson.dumps(batch).decode()})
    return len(batch)
