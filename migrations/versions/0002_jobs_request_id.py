"""jobs.request_id: the X-Request-ID of the request that recorded the job.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27

Nullable, no default: adding it rewrites no row (jobs recorded before it
have none).
"""
from alembic import op
import sqlalchemy as sa

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade():
    op.add_column('jobs', sa.Column('request_id', sa.String(length=128), nullable=True))


def downgrade():
    op.drop_column('jobs', 'request_id')
