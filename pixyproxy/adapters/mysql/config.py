"""mysql://user:pass@host:3306/db -> MySQLConfig (where the server is and who we are there).

The pool size and the timeouts are settings (PIXYPROXY_MYSQL_*), handed to the repository by the
container; a URL that still carries them as query options is refused with the setting to use instead,
so a value is never silently ignored and never set in two places.
"""

import re
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote, urlsplit

# A database name we are willing to put in CREATE DATABASE (identifiers cannot be bound as parameters).
DATABASE_NAME = re.compile(r"^[A-Za-z0-9_$-]{1,64}$")

# The query options the URL used to take, and the settings that replaced them.
MOVED_TO_SETTINGS = {
    "connect_timeout": "PIXYPROXY_MYSQL_CONNECT_TIMEOUT_SECONDS",
    "read_timeout": "PIXYPROXY_MYSQL_READ_TIMEOUT_SECONDS",
    "pool_size": "PIXYPROXY_MYSQL_POOL_MAX_SIZE",
    "pool_recycle": "PIXYPROXY_MYSQL_POOL_RECYCLE_SECONDS",
    "init_timeout": "PIXYPROXY_MYSQL_INIT_TIMEOUT_SECONDS",
}


@dataclass(frozen=True)
class MySQLConfig:
    host: str
    port: int
    user: str
    password: str = field(repr=False)
    database: str

    def safe_url(self) -> str:
        """The URL without its password, for logs and errors."""
        return f"mysql://{self.user}@{self.host}:{self.port}/{self.database}"


def parse_mysql_url(url: str) -> MySQLConfig:
    parts = urlsplit(url)
    scheme = parts.scheme.split("+", 1)[0].lower()
    if scheme != "mysql":  # mysql:// or mysql+anything:// (MariaDB too)
        raise ValueError(f"not a MySQL URL: {parts.scheme}://...")
    database = unquote(parts.path.lstrip("/"))
    if not DATABASE_NAME.match(database):
        raise ValueError("the MySQL URL must name a database: mysql://user:pass@host:3306/dbname")
    for key, _ in parse_qsl(parts.query, keep_blank_values=True):
        if key in MOVED_TO_SETTINGS:
            raise ValueError(
                f"the MySQL URL option {key!r} is a setting now: set {MOVED_TO_SETTINGS[key]} "
                "and remove it from the URL"
            )
        raise ValueError(
            f"the MySQL URL takes no query options (got {key!r}); the pool and timeouts are the "
            f"settings {', '.join(MOVED_TO_SETTINGS.values())}"
        )
    return MySQLConfig(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 3306,
        user=unquote(parts.username) if parts.username else "root",
        password=unquote(parts.password) if parts.password else "",
        database=database,
    )
