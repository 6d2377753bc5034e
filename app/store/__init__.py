"""The SQL store: tables, migrations and queries (SQLite or PostgreSQL)."""
