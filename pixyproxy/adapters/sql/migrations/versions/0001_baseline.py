"""The baseline: the schema of the last release before Alembic, on both dialects.

images (with their word postings and usage) as that release's numbered migrations left them (version 5:
legacy_sqlite.py, legacy_mysql.py, which also bring an older database there), and the jobs and webhook
outbox tables its stores created at start. A database made by that release passes through unchanged.

Revision ID: 0001
Revises:
"""

from typing import Any

from alembic import op

from pixyproxy.adapters.sql.migrations import legacy_mysql, legacy_sqlite

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

SQLITE_TABLES = (
    """
    CREATE TABLE IF NOT EXISTS jobs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        job_id TEXT NOT NULL UNIQUE,
        owner TEXT NOT NULL,
        status TEXT NOT NULL,
        request_json TEXT NOT NULL,
        created_at TEXT NOT NULL,
        started_at TEXT,
        finished_at TEXT,
        attempts INTEGER NOT NULL,
        lease_owner TEXT,
        lease_until TEXT,
        images_json TEXT NOT NULL,
        error_code TEXT,
        error_detail TEXT,
        idempotency_key TEXT,
        request_hash TEXT,
        notified INTEGER NOT NULL
    )
    """,
    "CREATE UNIQUE INDEX IF NOT EXISTS jobs_owner_key ON jobs (owner, idempotency_key)",
    "CREATE INDEX IF NOT EXISTS jobs_created_at_id ON jobs (created_at DESC, id DESC)",
    "CREATE INDEX IF NOT EXISTS jobs_owner_created_at_id ON jobs (owner, created_at DESC, id DESC)",
    "CREATE INDEX IF NOT EXISTS jobs_status_id ON jobs (status, id)",
    "CREATE INDEX IF NOT EXISTS jobs_status_lease ON jobs (status, lease_until)",
    "CREATE INDEX IF NOT EXISTS jobs_lease_owner ON jobs (lease_owner)",
    "CREATE INDEX IF NOT EXISTS jobs_unnotified ON jobs (notified, id)",
    """
    CREATE TABLE IF NOT EXISTS webhook_deliveries (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        delivery_id TEXT NOT NULL UNIQUE,
        job_id TEXT NOT NULL UNIQUE,
        url TEXT NOT NULL,
        event_type TEXT NOT NULL,
        payload TEXT NOT NULL,
        created_at TEXT NOT NULL,
        next_attempt_at TEXT NOT NULL,
        status TEXT NOT NULL,
        attempts INTEGER NOT NULL,
        last_status_code INTEGER,
        last_error TEXT,
        delivered_at TEXT,
        lease_owner TEXT,
        lease_until TEXT
    )
    """,
    "CREATE INDEX IF NOT EXISTS webhook_deliveries_due ON webhook_deliveries (status, next_attempt_at)",
    "CREATE INDEX IF NOT EXISTS webhook_deliveries_lease_owner ON webhook_deliveries (lease_owner)",
)
MYSQL_TABLES = {
    "jobs": """
    CREATE TABLE IF NOT EXISTS jobs (
        id BIGINT NOT NULL AUTO_INCREMENT,
        job_id CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
        owner VARCHAR(255) NOT NULL,
        status VARCHAR(16) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
        request_json MEDIUMTEXT NOT NULL,
        created_at DATETIME(6) NOT NULL,
        started_at DATETIME(6) NULL,
        finished_at DATETIME(6) NULL,
        attempts INT NOT NULL,
        lease_owner VARCHAR(160) NULL,
        lease_until DATETIME(6) NULL,
        images_json MEDIUMTEXT NOT NULL,
        error_code VARCHAR(64) NULL,
        error_detail TEXT NULL,
        idempotency_key VARCHAR(255) NULL,
        request_hash CHAR(64) CHARACTER SET ascii COLLATE ascii_bin NULL,
        notified TINYINT NOT NULL,
        PRIMARY KEY (id),
        UNIQUE KEY uq_jobs_job_id (job_id),
        UNIQUE KEY uq_jobs_owner_key (owner, idempotency_key),
        KEY ix_jobs_created_at_id (created_at DESC, id DESC),
        KEY ix_jobs_owner_created_at_id (owner, created_at DESC, id DESC),
        KEY ix_jobs_status_id (status, id),
        KEY ix_jobs_status_lease (status, lease_until),
        KEY ix_jobs_lease_owner (lease_owner),
        KEY ix_jobs_unnotified (notified, id)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin
    """,
    "webhook_deliveries": """
CREATE TABLE IF NOT EXISTS webhook_deliveries (
    id BIGINT NOT NULL AUTO_INCREMENT,
    delivery_id VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    job_id VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    url TEXT NOT NULL,
    event_type VARCHAR(64) NOT NULL,
    payload MEDIUMTEXT NOT NULL,
    created_at DATETIME(6) NOT NULL,
    next_attempt_at DATETIME(6) NOT NULL,
    status VARCHAR(16) NOT NULL,
    attempts INT NOT NULL,
    last_status_code INT NULL,
    last_error TEXT NULL,
    delivered_at DATETIME(6) NULL,
    lease_owner VARCHAR(128) NULL,
    lease_until DATETIME(6) NULL,
    PRIMARY KEY (id),
    UNIQUE KEY uq_webhook_deliveries_delivery_id (delivery_id),
    UNIQUE KEY uq_webhook_deliveries_job_id (job_id),
    KEY ix_webhook_deliveries_due (status, next_attempt_at),
    KEY ix_webhook_deliveries_lease_owner (lease_owner)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin
""",
}
MYSQL_TABLE_EXISTS = (
    "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = %(name)s"
)


def upgrade() -> None:
    raw: Any = op.get_bind().connection.dbapi_connection  # sqlite3's or PyMySQL's own connection
    if op.get_bind().dialect.name == "sqlite":
        legacy_sqlite.to_version_5(raw)
        for statement in SQLITE_TABLES:
            raw.execute(statement)
        return
    with raw.cursor() as cursor:
        legacy_mysql.to_version_5(cursor)
        for name, create in MYSQL_TABLES.items():
            # asked first: CREATE ... IF NOT EXISTS on an existing table leaves a server note
            cursor.execute(MYSQL_TABLE_EXISTS, {"name": name})
            if not cursor.fetchone()[0]:
                cursor.execute(create)


def downgrade() -> None:
    raise NotImplementedError("the baseline is not undone: restore the backup taken before upgrading")
