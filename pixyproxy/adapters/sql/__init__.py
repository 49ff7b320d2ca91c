"""The one SQL layer (SQLAlchemy Core, async): one engine per process for every table, on SQLite
(aiosqlite: statements off the event loop) or MySQL (aiomysql); the schema is Alembic's."""

import logging

# Alembic narrates every start at INFO (its plugins, the dialect), from its import on; schema.py logs
# what changed instead.
logging.getLogger("alembic").setLevel(logging.WARNING)
