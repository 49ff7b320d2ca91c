"""The MySQL schema as the releases before Alembic made it (`pixyproxy_schema_version` 1 to 5), kept as
the baseline revision's way there: a fresh database gets every step, one of an older release the steps it
lacks, one made by the last of them none. Each statement is safe to run again (DDL commits on its own):
a start killed midway resumes where it stopped. The caller holds the schema lock."""

import logging
from collections.abc import Callable

import orjson
from pymysql import err

from pixyproxy.adapters.sql.image_rows import INSERT_COLUMNS, SELECT_COLUMNS
from pixyproxy.adapters.sql.word_postings import WORD_KEY_LENGTH, keys_of
from pixyproxy.domain.errors import MetadataUnavailable

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


def create_table(cursor) -> None:
    """The posting table, asked for first: on a migration resumed after a crash, CREATE ... IF NOT
    EXISTS would log a server note (a Python warning through aiomysql)."""
    cursor.execute(TABLE_EXISTS)
    if not (cursor.fetchone())[0]:
        cursor.execute(CREATE_TABLE)


def backfill(cursor, from_start: bool = False) -> int:
    """Index the words of every image already stored (a database from before this index), resuming
    after the last image posted unless `from_start`; returns how many images it read."""
    after = 0
    if not from_start:
        cursor.execute(POSTED_UP_TO)
        (after,) = cursor.fetchone()
    resumed, images, pairs = after, 0, 0
    while True:
        cursor.execute(NEXT_PROMPTS, {"after": after, "limit": BACKFILL_BATCH})
        rows = cursor.fetchall()
        if not rows:
            break
        batch: list[tuple[int, str]] = []
        for image_id, prompt in rows:
            batch += [(image_id, key) for key in keys_of(prompt)]
            if len(batch) >= BACKFILL_STATEMENT_PAIRS:
                pairs += _post(cursor, batch)
                batch = []
        pairs += _post(cursor, batch)
        after, images = rows[-1][0], images + len(rows)
        if images % 100_000 < BACKFILL_BATCH:
            log.info("indexing the words of stored images: %d done, up to id %d", images, after)
    log.info(
        "indexed the words of %d stored images (%d postings; resumed after id %d)", images, pairs, resumed
    )
    return images


def _post(cursor, batch: list[tuple[int, str]]) -> int:
    if batch:
        cursor.execute(BACKFILL_POSTINGS, {"postings": orjson.dumps(batch).decode()})
    return len(batch)


CREATE_VERSION_TABLE = """
CREATE TABLE IF NOT EXISTS pixyproxy_schema_version (
    version INT NOT NULL PRIMARY KEY,
    description VARCHAR(200) NOT NULL,
    applied_at DATETIME(6) NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin
"""

# version -> (description, steps). Append new versions; never edit or remove an applied one. A step is a
# statement, or an async function of the cursor for work SQL alone cannot do (the word backfill).
# Each statement must be safe to run again (IF NOT EXISTS), because DDL commits implicitly: a crash
# between a statement and its version row re-runs it on the next start. MySQL has no ADD COLUMN IF NOT
# EXISTS, so an ALTER that adds columns is one statement (atomic DDL) and a re-run of it that finds them
# already there counts as done (ALREADY_APPLIED).
Step = str | Callable[..., object]
MIGRATIONS: dict[int, tuple[str, tuple[Step, ...]]] = {
    1: (
        "images table, unique guid and idempotency key, keyset index for the list order",
        (
            # prompt/revised_prompt are MEDIUMTEXT: a 32,000-character prompt of 4-byte characters
            # is 128 KB, past TEXT's 64 KB.
            """
            CREATE TABLE IF NOT EXISTS images (
                id BIGINT NOT NULL AUTO_INCREMENT,
                guid CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
                filename VARCHAR(255) NOT NULL,
                prompt MEDIUMTEXT NOT NULL,
                created_at DATETIME(6) NOT NULL,
                updated_at DATETIME(6) NOT NULL,
                content_type VARCHAR(100) NOT NULL,
                size_bytes BIGINT NOT NULL,
                width INT NOT NULL,
                height INT NOT NULL,
                model VARCHAR(255) NOT NULL,
                size VARCHAR(32) NULL,
                quality VARCHAR(32) NULL,
                revised_prompt MEDIUMTEXT NULL,
                usage_json TEXT NULL,
                sha256 CHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
                idempotency_key VARCHAR(255) NULL,
                request_hash CHAR(64) CHARACTER SET ascii COLLATE ascii_bin NULL,
                PRIMARY KEY (id),
                UNIQUE KEY uq_images_guid (guid),
                UNIQUE KEY uq_images_idempotency_key (idempotency_key),
                KEY ix_images_created_at_id (created_at DESC, id DESC)
            ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin
            """,
        ),
    ),
    2: (
        "image options (background, output format and compression, moderation, safety identifier) and "
        "edit lineage (parent, mask, references), parent indexed",
        (
            """
            ALTER TABLE images
                ADD COLUMN background VARCHAR(32) NULL,
                ADD COLUMN output_format VARCHAR(16) NULL,
                ADD COLUMN output_compression INT NULL,
                ADD COLUMN moderation VARCHAR(16) NULL,
                ADD COLUMN safety_identifier VARCHAR(128) NULL,
                ADD COLUMN parent_guid CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NULL,
                ADD COLUMN mask_guid CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NULL,
                ADD COLUMN reference_guids_json TEXT NULL,
                ADD KEY ix_images_parent_guid (parent_guid)
            """,
        ),
    ),
    3: (
        "word search: a case- and accent-insensitive copy of the prompt with a FULLTEXT index (stopwords "
        "kept), and an index for the model filter",
        (
            # The table's utf8mb4_bin would make the index case-sensitive; the stored copy is _ci.
            # Without stopwords every word of 3+ letters is indexed ("the", "with" ... too).
            "SET SESSION innodb_ft_enable_stopword = OFF",
            """
            ALTER TABLE images ADD COLUMN prompt_words MEDIUMTEXT CHARACTER SET utf8mb4
                COLLATE utf8mb4_unicode_ci GENERATED ALWAYS AS (prompt) STORED
            """,
            "ALTER TABLE images ADD FULLTEXT KEY ft_images_prompt_words (prompt_words)",
            "ALTER TABLE images ADD KEY ix_images_model_created_at_id (model, created_at DESC, id DESC)",
        ),
    ),
    4: (
        "tenancy: each image's owner (an API key's name) and estimated cost, owner indexed for its list; "
        "a usage table, one row per provider call, kept when images are deleted",
        (
            """
            ALTER TABLE images
                ADD COLUMN owner VARCHAR(64) NULL,
                ADD COLUMN estimated_cost_usd DOUBLE NULL,
                ADD KEY ix_images_owner_created_at_id (owner, created_at DESC, id DESC)
            """,
            """
            CREATE TABLE IF NOT EXISTS usage_events (
                id BIGINT NOT NULL AUTO_INCREMENT,
                created_at DATETIME(6) NOT NULL,
                owner VARCHAR(64) NULL,
                model VARCHAR(255) NOT NULL,
                operation VARCHAR(16) NOT NULL,
                images INT NOT NULL,
                input_tokens BIGINT NOT NULL,
                output_tokens BIGINT NOT NULL,
                estimated_cost_usd DOUBLE NULL,
                PRIMARY KEY (id),
                KEY ix_usage_events_created_at (created_at)
            ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin
            """,
        ),
    ),
    5: (
        "word search: a posting table (word, created_at, image) filled from the stored prompts, in place "
        "of the FULLTEXT index and its copy of the prompt",
        (
            create_table,
            backfill,
            # Both are instant on MariaDB 10.4+ and MySQL 8.0.29+ (no table copy).
            "ALTER TABLE images DROP INDEX ft_images_prompt_words, DROP COLUMN prompt_words",
        ),
    ),
}
SCHEMA_VERSION = max(MIGRATIONS)
ALREADY_APPLIED = {1060, 1061, 1091}  # duplicate column name, duplicate key name, nothing to drop

# What the repository reads and writes; checked after migrating so a foreign `images` table that
# happens to share the name is reported clearly instead of failing on the first request.
# What version 5 has: today's columns less those Alembic's later revisions add (versions/0002 on).
ADDED_BY_LATER_REVISIONS = frozenset({"provider", "deployment", "attempts"})
REQUIRED_COLUMNS = frozenset({*SELECT_COLUMNS, *INSERT_COLUMNS}) - ADDED_BY_LATER_REVISIONS


def _scalar(cursor, sql: str, params: dict | None = None):
    cursor.execute(sql, params)
    row = cursor.fetchone()
    return row[0] if row else None


def current_version(cursor) -> int:
    exists = _scalar(
        cursor,
        "SELECT COUNT(*) FROM information_schema.tables "
        "WHERE table_schema = DATABASE() AND table_name = %(table)s",
        {"table": "pixyproxy_schema_version"},
    )
    if not exists:  # asked first: CREATE ... IF NOT EXISTS on an existing table logs a server note
        cursor.execute(CREATE_VERSION_TABLE)
    return int(_scalar(cursor, "SELECT COALESCE(MAX(version), 0) FROM pixyproxy_schema_version"))


def _refuse_foreign_images_table(cursor, required: frozenset[str] | set[str]) -> None:
    """Stop when an `images` table lacks `required` columns: checked before the first migration too, so a
    foreign table that happens to share the name is reported and never altered."""
    cursor.execute(
        "SELECT column_name FROM information_schema.columns "
        "WHERE table_schema = DATABASE() AND table_name = %(table)s",
        {"table": "images"},
    )
    present = {row[0].lower() for row in cursor.fetchall()}
    missing = set(required) - present
    if present and missing:
        raise MetadataUnavailable(
            "the existing `images` table was not made by PixyProxy; it lacks " + ", ".join(sorted(missing))
        )


def to_version_5(cursor) -> int:
    """Bring the connected database to version 5; returns the version it is at afterwards."""
    version = current_version(cursor)
    if version == 0:
        _refuse_foreign_images_table(cursor, {"guid"})
    for target in sorted(v for v in MIGRATIONS if v > version):
        description, steps = MIGRATIONS[target]
        for step in steps:
            if callable(step):
                step(cursor)
                continue
            try:
                cursor.execute(step)
            except err.MySQLError as exc:
                if not exc.args or exc.args[0] not in ALREADY_APPLIED:
                    raise
        cursor.execute(
            "INSERT INTO pixyproxy_schema_version (version, description, applied_at) "
            "VALUES (%(version)s, %(description)s, UTC_TIMESTAMP(6))",
            {"version": target, "description": description},
        )
        log.info("MySQL schema migrated to version %d: %s", target, description)
        version = target
    _refuse_foreign_images_table(cursor, REQUIRED_COLUMNS)
    return version
