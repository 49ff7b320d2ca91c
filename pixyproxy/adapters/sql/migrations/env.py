"""Alembic's env.py: always run on the connection schema.upgrade() (or `pixyproxy db`) opened and
locked; the whole upgrade in that connection's transaction (SQLite: one transaction, so a start killed
midway leaves nothing half done)."""

from alembic import context

connection = context.config.attributes["connection"]
context.configure(connection=connection, transaction_per_migration=False)
with context.begin_transaction():
    context.run_migrations()
