"""jobs: a time to run (run_at) and the index of scheduled jobs by it.

Revision ID: 0006
Revises: 0003
Create Date: 2026-12-01

Scheduled jobs wait in the ledger (status 'scheduled') until beat's due pass
queues them; the partial index holds only them, so a job never scheduled
adds no index entry. The statuses 'scheduled' and 'cancelled' need no
change of the column (a string of 16).
"""
from alembic import op
import sqlalchemy as sa

revision = '0006'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade():
    op.add_column('jobs', sa.Column('run_at', sa.DateTime(timezone=True), nullable=True))
    op.create_index('ix_jobs_scheduled', 'jobs', ['run_at', 'id'],
                    postgresql_where=sa.text("status = 'scheduled'"))


def downgrade():
    op.drop_index('ix_jobs_scheduled', table_name='jobs')
    op.drop_column('jobs', 'run_at')
