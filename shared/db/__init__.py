"""Postgres access: the connection pool, the migrator and JSON codecs."""
