"""Deliveries leave room on each page, so taking and releasing a lease is a HOT update.

A delivery row is updated twice per attempt: its lease (an unindexed column), then its
outcome. With full pages (the default fillfactor 100) even the lease update needs a new
row version on another page and new entries in all seven of the table's indexes; with
room left on the page PostgreSQL updates it in place (heap-only tuple). PostgreSQL only.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29 11:46:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FILLFACTOR = 70


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"ALTER TABLE deliveries SET (fillfactor = {FILLFACTOR})")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE deliveries RESET (fillfactor)")
