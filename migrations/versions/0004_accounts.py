"""API keys, owners of datasets and jobs, stored bytes, rate windows, idempotency records

Existing datasets and jobs go to the built-in owner (a key with no token, so nobody logs in
as it; admins see its rows). Datasets' stored bytes are backfilled with their upload size,
results' with 0: close enough for a quota, exact for everything stored from now on.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
BUILTIN_OWNER = "0" * 32


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=True),
        sa.Column("token_prefix", sa.String(16), nullable=True),
        sa.Column("is_admin", sa.Boolean(), nullable=False),
        sa.Column("max_active_jobs", sa.Integer(), nullable=True),
        sa.Column("max_storage_bytes", sa.BigInteger(), nullable=True),
        sa.Column("max_upload_bytes", sa.BigInteger(), nullable=True),
        sa.Column("requests_per_minute", sa.Integer(), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("revoked_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_api_keys"),
        sa.UniqueConstraint("token_hash", name="uq_api_keys_token_hash"),
    )
    op.execute(
        sa.text(
            "INSERT INTO api_keys (id, name, is_admin, created_at) "
            "VALUES (:id, 'built-in', false, CURRENT_TIMESTAMP)"
        ).bindparams(id=BUILTIN_OWNER)
    )
    op.create_table(
        "rate_windows",
        sa.Column("key_id", sa.String(32), nullable=False),
        sa.Column("window", sa.BigInteger(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("key_id", "window", name="pk_rate_windows"),
    )
    op.create_table(
        "idempotency_records",
        sa.Column("key_id", sa.String(32), nullable=False),
        sa.Column("idempotency_key", sa.String(255), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("response", sa.JSON(), nullable=True),
        sa.Column("location", sa.String(255), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("key_id", "idempotency_key", name="pk_idempotency_records"),
    )
    op.create_index("ix_idempotency_records_created_at", "idempotency_records", ["created_at"])

    for table in ("datasets", "jobs"):
        with op.batch_alter_table(table) as batch:  # batch: SQLite cannot ALTER a column in place
            batch.add_column(sa.Column("owner_id", sa.String(32), nullable=True))
            batch.add_column(sa.Column("stored_bytes", sa.BigInteger(), nullable=True))
            if table == "datasets":
                batch.add_column(sa.Column("last_used_at", TS, nullable=True))
        backfill = "owner_id = :owner, stored_bytes = " + (
            "size_bytes, last_used_at = created_at" if table == "datasets" else "0"
        )
        op.execute(sa.text(f"UPDATE {table} SET {backfill}").bindparams(owner=BUILTIN_OWNER))
        with op.batch_alter_table(table) as batch:
            batch.alter_column("owner_id", existing_type=sa.String(32), nullable=False)
            batch.alter_column("stored_bytes", existing_type=sa.BigInteger(), nullable=False)
            if table == "datasets":
                batch.alter_column("last_used_at", existing_type=TS, nullable=False)
            batch.create_foreign_key(
                f"fk_{table}_owner_id_api_keys", "api_keys", ["owner_id"], ["id"]
            )
            batch.create_index(f"ix_{table}_owner_id", ["owner_id"])


def downgrade() -> None:
    for table in ("jobs", "datasets"):
        with op.batch_alter_table(table) as batch:
            batch.drop_index(f"ix_{table}_owner_id")
            batch.drop_constraint(f"fk_{table}_owner_id_api_keys", type_="foreignkey")
            batch.drop_column("owner_id")
            batch.drop_column("stored_bytes")
            if table == "datasets":
                batch.drop_column("last_used_at")
    op.drop_index("ix_idempotency_records_created_at", "idempotency_records")
    op.drop_table("idempotency_records")
    op.drop_table("rate_windows")
    op.drop_table("api_keys")
