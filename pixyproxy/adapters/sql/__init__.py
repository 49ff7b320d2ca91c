"""The one SQL layer (SQLAlchemy Core, async): one engine per process for every table, on SQLite
(aiosqlite: statements off the event loop) or MySQL (aiomysql); the schema is Alembic's."""
