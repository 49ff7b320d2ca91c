"""Alembic's revisions of every table (versions/) and the pre-Alembic chains the baseline runs."""

# The newest revision: a start that finds the database there needs no more than one query (Alembic itself
# is not even imported). tests/contract/test_schema_upgrade.py checks it against versions/.
HEAD = "0003"
