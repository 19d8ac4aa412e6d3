# The service's image: the pinned runtime requirements in the system Python.
# compose/docker-compose.yml runs web, worker, beat, Flower (the Procfile's
# commands) and the migration (`python3 manage.py db upgrade`) from it.
FROM python:3.11-slim-bookworm

# MANAGE_IN_CONTAINER: manage.py uses this interpreter (no .venv) and the
# environment compose gives it (no .env, no local database provisioning).
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MANAGE_IN_CONTAINER=1

WORKDIR /app
# Requirements first: the dependency layer is rebuilt only when they change.
COPY requirements.txt ./
RUN pip install -r requirements.txt

COPY . .
# Not root: the code stays read-only to the processes that run it.
RUN useradd --system --no-create-home --home-dir /app --uid 10001 app
USER app
