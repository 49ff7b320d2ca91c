"""The SQL layer's stores for tests: a Database (one engine) on a URL with the settings' defaults, and
each table's store on it."""

from pixyproxy.adapters.sql.database import Database
from pixyproxy.adapters.sql.images import SQLImageRepository
from pixyproxy.adapters.sql.jobs import SQLJobStore
from pixyproxy.adapters.sql.webhooks import SQLWebhookOutbox
from pixyproxy.settings import Settings

OTHER_OPTIONS = ("sqlite_busy_timeout_seconds",)


def database_options(**overrides) -> dict:
    """The Database's keywords at their settings' defaults (written once, in settings.py), as the
    container passes them: pool_max_size=... for mysql_pool_max_size, and so on."""
    fields = Settings.model_fields
    options = {
        name.removeprefix("mysql_"): f.default for name, f in fields.items() if name.startswith("mysql_")
    }
    options |= {name: fields[name].default for name in OTHER_OPTIONS}
    unknown = set(overrides) - set(options)
    assert not unknown, f"not a database setting: {unknown}"
    return options | overrides


def make_database(url: str, **overrides) -> Database:
    return Database(url, **database_options(**overrides))


def make_repository(url: str, **overrides) -> SQLImageRepository:
    return SQLImageRepository(make_database(url, **overrides))


def make_job_store(url: str, **overrides) -> SQLJobStore:
    return SQLJobStore(make_database(url, **overrides))


def make_outbox(url: str, **overrides) -> SQLWebhookOutbox:
    return SQLWebhookOutbox(make_database(url, **overrides))


def sqlite_url(path) -> str:
    return f"sqlite:///{path}"


async def init_as_an_older_release(repository) -> None:
    """Start `repository` as a release before Alembic would have (its schema patched by the test), then
    forget the Alembic stamp: the next start's baseline brings the rest, as an upgrade would."""
    from sqlalchemy import create_engine, text

    from pixyproxy.adapters.sql import schema

    url = repository.db.url
    # The baseline alone: later revisions expect the tables the release's whole chain makes.
    schema.upgrade(url, repository.db.migration_options(), "0001")
    driver = "sqlite+pysqlite" if url.get_backend_name() == "sqlite" else "mysql+pymysql"
    engine = create_engine(url.set(drivername=driver))
    try:
        with engine.begin() as connection:
            connection.execute(text("DROP TABLE alembic_version"))
    finally:
        engine.dispose()
