"""jobs.claimed_by (the owner of a claim) and job_counts (monotone tallies).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28

Adding a nullable column without a default rewrites no row (a short lock of
the table's definition, released at once: committed before the rest).
job_counts then starts with the tallies of the jobs in the ledger, one read
of it in a transaction of its own that stops no write; jobs that change
between this migration and the new code's start are not counted.
"""
from alembic import op
import sqlalchemy as sa

from ledger.counts import SEED

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade():
    op.add_column('jobs', sa.Column('claimed_by', sa.Integer(), nullable=True))
    op.create_table(
        'job_counts',
        sa.Column('kind', sa.String(length=64), nullable=False),
        sa.Column('event', sa.String(length=16), nullable=False),
        sa.Column('slot', sa.Integer(), nullable=False),
        sa.Column('total', sa.BigInteger(), nullable=False),
        sa.Column('seconds', sa.Float(), nullable=False),
        sa.Column('buckets', sa.ARRAY(sa.BigInteger()), nullable=True),
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'),
                  nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'),
                  nullable=False),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('kind', 'event', 'slot', name='ux_job_counts'),
    )
    with op.get_context().autocommit_block():  # the DDL committed: no lock held while reading
        op.execute(SEED)


def downgrade():
    op.drop_table('job_counts')
    op.drop_column('jobs', 'claimed_by')
