"""jobs.n_clusters may be NULL: methods that find the number of clusters (R-DC with a density method)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""
import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:  # batch: SQLite cannot ALTER a column in place
        batch.alter_column("n_clusters", existing_type=sa.Integer(), nullable=True)


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.alter_column("n_clusters", existing_type=sa.Integer(), nullable=False)
