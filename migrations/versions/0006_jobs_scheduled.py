"""jobs: a time to run (run_at) and the index of scheduled jobs by it.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01

Scheduled jobs wait in the ledger (status 'scheduled') until beat's due pass
queues them; the partial index holds only them, so a job never scheduled
adds no index entry. The statuses 'scheduled' and 'cancelled' need no
change of the column (a string of 16). The column is nullable (no table
rewrite); the index is built CONCURRENTLY, outside a transaction, as 0005's,
so writes to a big ledger go on meanwhile.
"""
from alembic import op
import sqlalchemy as sa

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade():
    op.add_column('jobs', sa.Column('run_at', sa.DateTime(timezone=True), nullable=True))
    with op.get_context().autocommit_block():
        op.execute('DROP INDEX CONCURRENTLY IF EXISTS ix_jobs_scheduled')
        op.execute("CREATE INDEX CONCURRENTLY ix_jobs_scheduled ON jobs (run_at, id) "
                   "WHERE status = 'scheduled'")


def downgrade():
    with op.get_context().autocommit_block():
        op.execute('DROP INDEX CONCURRENTLY IF EXISTS ix_jobs_scheduled')
    op.drop_column('jobs', 'run_at')
