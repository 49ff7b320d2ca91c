"""SQLite's side of the word index (adapters/word_postings.py): the posting table, how a new image's
rows are inserted, and the migration that fills it from the images stored before it and retires FTS5.

The postings are written in the image's own transaction; a trigger deletes them with their image, so a
row deleted by any client (the sqlite3 shell too) takes its words along.
"""

import sqlite3

from pixyproxy.adapters.word_postings import posting_rows

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


def migrate(db: sqlite3.Connection) -> None:
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
