"""The SQLite schema as the releases before Alembic made it (PRAGMA user_version 1 to 5), kept as the
baseline revision's way there: a fresh file gets every step, a file of an older release the steps it
lacks, one made by the last of them none. All inside the upgrade's one transaction."""

import sqlite3

from pixyproxy.adapters.sql.word_postings import posting_rows

CREATE = (
    """
    CREATE TABLE IF NOT EXISTS image_words (
        word TEXT NOT NULL,
        image_created_at TEXT NOT NULL,
        image_id INTEGER NOT NULL,
        PRIMARY KEY (word, image_created_at, image_id)
    ) WITHOUT ROWID
    """,
    "CREATE INDEX IF NOT EXISTS image_words_image_id ON image_words (image_id)",
    """
    CREATE TRIGGER IF NOT EXISTS image_words_delete AFTER DELETE ON images BEGIN
        DELETE FROM image_words WHERE image_id = old.id;
    END
    """,
)
INSERT_POSTING = (
    "INSERT INTO image_words (word, image_created_at, image_id) VALUES (:word, :created_at, :image_id)"
)
STORED_PROMPTS = "SELECT id, created_at, prompt FROM images"
# Re-indexing adds only what is missing.
INSERT_MISSING_POSTING = INSERT_POSTING.replace("INSERT INTO", "INSERT OR IGNORE INTO")
RETIRE_FTS = (
    "DROP TRIGGER IF EXISTS images_fts_insert",
    "DROP TRIGGER IF EXISTS images_fts_delete",
    "DROP TRIGGER IF EXISTS images_fts_update",
    "DROP TABLE IF EXISTS images_fts",
)
BACKFILL_BATCH = 10_000


def word_index(db: sqlite3.Connection) -> None:
    """Create the table, index the stored prompts and drop FTS5, inside the migration's transaction."""
    for statement in CREATE:
        db.execute(statement)
    index_stored(db)
    for statement in RETIRE_FTS:
        db.execute(statement)


def index_stored(db: sqlite3.Connection) -> int:
    """Post the words of every stored image that are not posted yet; returns how many images it read."""
    stored, images = db.execute(STORED_PROMPTS), 0
    while batch := stored.fetchmany(BACKFILL_BATCH):
        db.executemany(INSERT_MISSING_POSTING, [p for row in batch for p in posting_rows(*row)])
        images += len(batch)
    return images


# version -> script; MIGRATION_STEPS holds the versions that are work SQL alone cannot do (splitting
# prompts into words). Append new versions; never edit an applied one.
MIGRATIONS = {
    1: """
    CREATE TABLE IF NOT EXISTS images (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        guid TEXT NOT NULL UNIQUE,
        filename TEXT NOT NULL,
        prompt TEXT NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        content_type TEXT NOT NULL,
        size_bytes INTEGER NOT NULL,
        width INTEGER NOT NULL,
        height INTEGER NOT NULL,
        model TEXT NOT NULL,
        size TEXT,
        quality TEXT,
        revised_prompt TEXT,
        usage_json TEXT,
        sha256 TEXT NOT NULL,
        idempotency_key TEXT UNIQUE,
        request_hash TEXT
    );
    CREATE INDEX IF NOT EXISTS images_created_at_id ON images (created_at DESC, id DESC);
    """,
    # Image options and edit lineage; each migration runs in one transaction with its version stamp.
    2: """
    ALTER TABLE images ADD COLUMN background TEXT;
    ALTER TABLE images ADD COLUMN output_format TEXT;
    ALTER TABLE images ADD COLUMN output_compression INTEGER;
    ALTER TABLE images ADD COLUMN moderation TEXT;
    ALTER TABLE images ADD COLUMN safety_identifier TEXT;
    ALTER TABLE images ADD COLUMN parent_guid TEXT;
    ALTER TABLE images ADD COLUMN mask_guid TEXT;
    ALTER TABLE images ADD COLUMN reference_guids_json TEXT;
    CREATE INDEX IF NOT EXISTS images_parent_guid ON images (parent_guid);
    """,
    # Word search: an FTS5 index of the prompts (kept by triggers; prompts never change, images are
    # deleted), filled from the rows already there; and an index for the model filter.
    3: """
    CREATE VIRTUAL TABLE IF NOT EXISTS images_fts USING fts5(
        prompt, content='images', content_rowid='id', tokenize='unicode61 remove_diacritics 2'
    );
    CREATE TRIGGER IF NOT EXISTS images_fts_insert AFTER INSERT ON images BEGIN
        INSERT INTO images_fts (rowid, prompt) VALUES (new.id, new.prompt);
    END;
    CREATE TRIGGER IF NOT EXISTS images_fts_delete AFTER DELETE ON images BEGIN
        INSERT INTO images_fts (images_fts, rowid, prompt) VALUES ('delete', old.id, old.prompt);
    END;
    CREATE TRIGGER IF NOT EXISTS images_fts_update AFTER UPDATE OF prompt ON images BEGIN
        INSERT INTO images_fts (images_fts, rowid, prompt) VALUES ('delete', old.id, old.prompt);
        INSERT INTO images_fts (rowid, prompt) VALUES (new.id, new.prompt);
    END;
    INSERT INTO images_fts (images_fts) VALUES ('rebuild');
    CREATE INDEX IF NOT EXISTS images_model_created_at_id ON images (model, created_at DESC, id DESC);
    """,
    # Tenancy: each image's owner (an API key's name) and estimated cost, and a usage row per provider
    # call that outlives the images it made.
    4: """
    ALTER TABLE images ADD COLUMN owner TEXT;
    ALTER TABLE images ADD COLUMN estimated_cost_usd REAL;
    CREATE INDEX IF NOT EXISTS images_owner_created_at_id ON images (owner, created_at DESC, id DESC);
    CREATE TABLE IF NOT EXISTS usage_events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        created_at TEXT NOT NULL,
        owner TEXT,
        model TEXT NOT NULL,
        operation TEXT NOT NULL,
        images INTEGER NOT NULL,
        input_tokens INTEGER NOT NULL,
        output_tokens INTEGER NOT NULL,
        estimated_cost_usd REAL
    );
    CREATE INDEX IF NOT EXISTS usage_events_created_at ON usage_events (created_at);
    """,
}
# version -> a function of the connection, run in one transaction with its version stamp.
MIGRATION_STEPS = {
    # Word search off a posting table of our own, filled from the stored prompts; FTS5 retired.
    5: word_index,
}
SCHEMA_VERSION = max(*MIGRATIONS, *MIGRATION_STEPS)


def statements_of(script: str) -> list[str]:
    """A migration script's statements, a trigger's BEGIN ... END kept whole (SQLite's own test of
    where a statement ends)."""
    statements, current = [], ""
    for line in script.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            statements.append(current.strip())
            current = ""
    return statements


def to_version_5(db: sqlite3.Connection) -> None:
    """Apply what the file lacks of versions 1..5, each stamped in PRAGMA user_version (inside the
    caller's transaction: BEGIN IMMEDIATE, so processes starting at once apply each once)."""
    for target in sorted({*MIGRATIONS, *MIGRATION_STEPS}):
        if db.execute("PRAGMA user_version").fetchone()[0] >= target:
            continue
        if target in MIGRATION_STEPS:
            MIGRATION_STEPS[target](db)
        else:
            for statement in statements_of(MIGRATIONS[target]):
                db.execute(statement)
        db.execute(f"PRAGMA user_version = {int(target)}")
