"""Postgres: table definitions, engine creation, migrations and the embedded server."""
