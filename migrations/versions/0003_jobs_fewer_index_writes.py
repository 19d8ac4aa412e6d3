"""jobs: index only the unfinished jobs by status, and none by kind.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27

Each job row is written three times (recorded, claimed, completed); every
index gets an entry at each write. The sweep and the metrics look only for
queued and running jobs, and listings go newest first by id: a partial index
of the unfinished jobs serves them, with two entries per job instead of six.
"""
from alembic import op
import sqlalchemy as sa

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade():
    op.drop_index('ix_jobs_status_created', table_name='jobs')
    op.drop_index('ix_jobs_kind_created', table_name='jobs')
    op.create_index('ix_jobs_unfinished', 'jobs', ['status', 'created_at'],
                    postgresql_where=sa.text("status IN ('queued', 'running')"))


def downgrade():
    op.drop_index('ix_jobs_unfinished', table_name='jobs')
    op.create_index('ix_jobs_kind_created', 'jobs', ['kind', 'created_at'])
    op.create_index('ix_jobs_status_created', 'jobs', ['status', 'created_at'])
