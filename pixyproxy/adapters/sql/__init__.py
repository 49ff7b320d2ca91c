"""The one SQL layer (SQLAlchemy Core, async): one engine per process for every table, on SQLite
(aiosqlite: statements off the event loop) or MySQL (aiomysql); the schema is Alembic's."""

import logging

# Alembic narrates every start at INFO (its plugins, the dialect), from its import on; schema.py logs
# what changed instead. SQLAlchemy (INFO) and aiosqlite (DEBUG) log each statement with its values:
# values are clients' prompts and keys, never log lines, whatever PIXYPROXY_LOG_LEVEL says.
logging.getLogger("alembic").setLevel(logging.WARNING)
logging.getLogger("sqlalchemy").setLevel(logging.WARNING)
logging.getLogger("aiosqlite").setLevel(logging.INFO)
