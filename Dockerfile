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

# Web and Flower listen on every interface of the container (published ports).
ENV BIND_ADDRESS=0.0.0.0
EXPOSE 8000
# By default the image is the web front: the Procfile's web command, exec'd
# so that gunicorn is PID 1 and gets docker's SIGTERM (graceful shutdown).
# compose gives each other process its own command.
CMD ["/bin/sh", "-c", "exec gunicorn --bind ${BIND_ADDRESS:-127.0.0.1}:${PORT:-8000} --workers ${WEB_CONCURRENCY:-1} --worker-class gevent --worker-connections ${WEB_CONNECTIONS:-1000} 'web:create_app()'"]
