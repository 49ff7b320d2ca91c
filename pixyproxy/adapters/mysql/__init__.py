"""The MySQL (and MariaDB) metadata store: aiomysql (PyMySQL) pool, named parameters, a versioned schema."""

from pixyproxy.adapters.mysql.config import MySQLConfig, parse_mysql_url
from pixyproxy.adapters.mysql.repository import MySQLImageRepository

__all__ = ["MySQLConfig", "MySQLImageRepository", "parse_mysql_url"]
