"""The job ledger: one row per accepted job, the source of truth of its state.

A job goes queued -> running -> succeeded | failed. The worker completes a
job in the same transaction as its effect, so a job is applied at most once
whatever the broker delivers.
"""
from sqlalchemy import BigInteger, Column, DateTime, Index, Integer, String, Text, func, update
from sqlalchemy.dialects.postgresql import JSONB

from pg.orm import BaseModel

QUEUED, RUNNING, SUCCEEDED, FAILED = 'queued', 'running', 'succeeded', 'failed'
STATUSES = (QUEUED, RUNNING, SUCCEEDED, FAILED)
FINISHED = (SUCCEEDED, FAILED)


class Job(BaseModel):
    __tablename__ = 'jobs'
    __table_args__ = (
        Index('ix_jobs_status_created', 'status', 'created_at'),
        Index('ix_jobs_kind_created', 'kind', 'created_at'),
    )

    id = Column(BigInteger, primary_key=True)
    kind = Column(String(64), nullable=False)
    payload = Column(JSONB, nullable=False)
    status = Column(String(16), nullable=False, default=QUEUED)
    attempts = Column(Integer, nullable=False, default=0)
    result = Column(JSONB)
    error = Column(Text)
    finished_at = Column(DateTime(timezone=True))

    def public(self):
        """The job as the HTTP API shows it."""
        return {
            'id': self.id, 'kind': self.kind, 'status': self.status,
            'attempts': self.attempts, 'result': self.result, 'error': self.error,
            'created_at': self.created_at.isoformat() if self.created_at else None,
            'updated_at': self.updated_at.isoformat() if self.updated_at else None,
        }


def claim(session, job_id):
    """Mark an unfinished job running and count the attempt (committed at once,
    so a worker that dies mid-job leaves a trace). Returns the attempt number,
    or None when the job is unknown or already finished (a duplicate delivery)."""
    attempts = session.execute(
        update(Job).where(Job.id == job_id, Job.status.in_((QUEUED, RUNNING)))
        .values(status=RUNNING, attempts=Job.attempts + 1, updated_at=func.now())
        .returning(Job.attempts)).scalar()
    session.commit()
    return attempts


def settle(session, job_id, status, *, result=None, error=None, from_status=RUNNING):
    """Set the status of a job that is still `from_status`; True if it was."""
    values = {'status': status, 'error': error, 'updated_at': func.now()}
    if status in FINISHED:
        values.update(result=result, finished_at=func.now())
    done = session.execute(
        update(Job).where(Job.id == job_id, Job.status == from_status).values(**values)
        .returning(Job.id)).scalar()
    return done is not None
