"""MySQL's connection URL (the stores themselves are adapters/sql/, for SQLite and MySQL alike)."""

from pixyproxy.adapters.mysql.config import MySQLConfig, parse_mysql_url

__all__ = ["MySQLConfig", "parse_mysql_url"]
