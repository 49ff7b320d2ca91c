"""mysql://user:pass@host:3306/db?connect_timeout=3&read_timeout=10&pool_size=10 -> MySQLConfig."""

import re
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote, urlsplit

# A database name we are willing to put in CREATE DATABASE (identifiers cannot be bound as parameters).
DATABASE_NAME = re.compile(r"^[A-Za-z0-9_$-]{1,64}$")

_OPTIONS = {
    "connect_timeout": float,
    "read_timeout": float,
    "pool_size": int,
    "pool_recycle": int,
    "init_timeout": float,
}


@dataclass(frozen=True)
class MySQLConfig:
    host: str = "127.0.0.1"
    port: int = 3306
    user: str = "root"
    password: str = field(default="", repr=False)
    database: str = "pixyproxy"
    # Seconds to open a TCP connection; seconds to wait for any reply (handshake included).
    connect_timeout: float = 3.0
    read_timeout: float = 5.0
    pool_size: int = 10
    pool_recycle: int = 600  # seconds a pooled connection may sit idle before it is replaced
    init_timeout: float = 120.0  # read timeout for schema migrations (DDL on a big table is slow)

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
    options = {}
    for key, value in parse_qsl(parts.query):
        if key not in _OPTIONS:
            raise ValueError(f"unknown MySQL URL option {key!r} (known: {', '.join(_OPTIONS)})")
        options[key] = _OPTIONS[key](value)
    return MySQLConfig(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 3306,
        user=unquote(parts.username) if parts.username else "root",
        password=unquote(parts.password) if parts.password else "",
        database=database,
        **options,
    )
