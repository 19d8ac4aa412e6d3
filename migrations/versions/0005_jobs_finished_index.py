"""ix_jobs_finished: the finished (and cancelled) jobs by kind, status and id (listings, pruning).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28

Built CONCURRENTLY, outside a transaction: writes to jobs go on while it is
built (a plain CREATE INDEX would stop every POST and every completion for
as long as it reads the ledger). A build that failed midway leaves an
invalid index behind; it is dropped first, so running the upgrade again
finishes the job.
"""
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade():
    with op.get_context().autocommit_block():
        op.execute('DROP INDEX CONCURRENTLY IF EXISTS ix_jobs_finished')
        op.execute("CREATE INDEX CONCURRENTLY ix_jobs_finished ON jobs (kind, status, id) "
                   "WHERE status IN ('succeeded', 'failed', 'cancelled')")


def downgrade():
    with op.get_context().autocommit_block():
        op.execute('DROP INDEX CONCURRENTLY IF EXISTS ix_jobs_finished')
