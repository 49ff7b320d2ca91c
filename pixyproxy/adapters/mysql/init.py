"""The init module: creates and migrates what PixyProxy needs in MySQL, idempotently.

Runs at service start (the app's lifespan calls repository.init()) and as `pixyproxy init`.

* `pixyproxy_schema_version` records every migration applied (version, description, when).
* Migrations only ever move forward. None drops or rewrites what a client stored; one drops a derived
  copy that a better index replaced (version 5).
* Concurrent starts (several workers or replicas) serialise on a named lock, so a migration runs once.
"""

import logging
from collections.abc import Awaitable, Callable

from pymysql import err

from pixyproxy.adapters.mysql import word_index
from pixyproxy.adapters.rows import INSERT_COLUMNS, SELECT_COLUMNS
from pixyproxy.domain.errors import MetadataUnavailable

log = logging.getLogger(__name__)

LOCK_TIMEOUT_SECONDS = 30

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
Step = str | Callable[..., Awaitable[None]]
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
            word_index.create_table,
            word_index.backfill,
            # Both are instant on MariaDB 10.4+ and MySQL 8.0.29+ (no table copy).
            "ALTER TABLE images DROP INDEX ft_images_prompt_words, DROP COLUMN prompt_words",
        ),
    ),
    6: (
        "the model catalogue: each image's provider, deployment and attempts; each usage row's provider",
        (
            """
            ALTER TABLE images
                ADD COLUMN provider VARCHAR(32) NULL,
                ADD COLUMN deployment VARCHAR(128) NULL,
                ADD COLUMN attempts INT NULL
            """,
            "ALTER TABLE usage_events ADD COLUMN provider VARCHAR(32) NULL",
        ),
    ),
}
SCHEMA_VERSION = max(MIGRATIONS)
ALREADY_APPLIED = {1060, 1061, 1091}  # duplicate column name, duplicate key name, nothing to drop

# What the repository reads and writes; checked after migrating so a foreign `images` table that
# happens to share the name is reported clearly instead of failing on the first request.
REQUIRED_COLUMNS = frozenset({*SELECT_COLUMNS, *INSERT_COLUMNS})


async def _scalar(cursor, sql: str, params: dict | None = None):
    await cursor.execute(sql, params)
    row = await cursor.fetchone()
    return row[0] if row else None


async def current_version(cursor) -> int:
    exists = await _scalar(
        cursor,
        "SELECT COUNT(*) FROM information_schema.tables "
        "WHERE table_schema = DATABASE() AND table_name = %(table)s",
        {"table": "pixyproxy_schema_version"},
    )
    if not exists:  # asked first: CREATE ... IF NOT EXISTS on an existing table logs a server note
        await cursor.execute(CREATE_VERSION_TABLE)
    return int(await _scalar(cursor, "SELECT COALESCE(MAX(version), 0) FROM pixyproxy_schema_version"))


async def _refuse_foreign_images_table(cursor, required: frozenset[str] | set[str]) -> None:
    """Stop when an `images` table lacks `required` columns: checked before the first migration too, so a
    foreign table that happens to share the name is reported and never altered."""
    await cursor.execute(
        "SELECT column_name FROM information_schema.columns "
        "WHERE table_schema = DATABASE() AND table_name = %(table)s",
        {"table": "images"},
    )
    present = {row[0].lower() for row in await cursor.fetchall()}
    missing = set(required) - present
    if present and missing:
        raise MetadataUnavailable(
            "the existing `images` table was not made by PixyProxy; it lacks " + ", ".join(sorted(missing))
        )


async def migrate(connection) -> int:
    """Bring the connected database to SCHEMA_VERSION; returns the version it is at afterwards."""
    async with connection.cursor() as cursor:
        locked = await _scalar(
            cursor,
            "SELECT GET_LOCK(LEFT(CONCAT('pixyproxy_schema:', DATABASE()), 64), %(timeout)s)",
            {"timeout": LOCK_TIMEOUT_SECONDS},
        )
        if locked != 1:
            raise MetadataUnavailable("another process holds the schema lock; try again")
        try:
            version = await current_version(cursor)
            if version == 0:
                await _refuse_foreign_images_table(cursor, {"guid"})
            if version > SCHEMA_VERSION:
                log.warning(
                    "MySQL schema is at version %d, newer than this PixyProxy knows (%d)",
                    version,
                    SCHEMA_VERSION,
                )
            for target in sorted(v for v in MIGRATIONS if v > version):
                description, steps = MIGRATIONS[target]
                for step in steps:
                    if callable(step):
                        await step(cursor)
                        continue
                    try:
                        await cursor.execute(step)
                    except err.MySQLError as exc:
                        if not exc.args or exc.args[0] not in ALREADY_APPLIED:
                            raise
                await cursor.execute(
                    "INSERT INTO pixyproxy_schema_version (version, description, applied_at) "
                    "VALUES (%(version)s, %(description)s, UTC_TIMESTAMP(6))",
                    {"version": target, "description": description},
                )
                log.info("MySQL schema migrated to version %d: %s", target, description)
                version = target
            await _refuse_foreign_images_table(cursor, REQUIRED_COLUMNS)
            return version
        finally:
            await cursor.execute("SELECT RELEASE_LOCK(LEFT(CONCAT('pixyproxy_schema:', DATABASE()), 64))")
            await cursor.fetchall()
