# deepclust image: the API by default; the same image runs the Celery worker and the
# migrations (see docker-compose.yml for their commands).
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DEEPCLUST_DATA_DIR=/app/var

WORKDIR /app

# Dependencies first, so this large layer (torch) is rebuilt only when requirements.txt changes.
COPY requirements.txt ./
RUN pip install -r requirements.txt

COPY pyproject.toml alembic.ini ./
COPY api ./api
COPY core ./core
COPY worker ./worker
COPY persistence ./persistence
COPY migrations ./migrations
COPY deepclust_client ./deepclust_client
# setuptools comes from requirements.txt, so no isolated build environment is needed.
RUN pip install --no-deps --no-build-isolation -e . \
 && python -m compileall -q api core worker persistence migrations

# Run as an unprivileged user; it may write only its home (torch caches) and the data dir.
RUN useradd --create-home --uid 10001 --user-group app \
 && mkdir -p /app/var \
 && chown app:app /app/var
USER app

EXPOSE 8000
CMD ["uvicorn", "api.main:app", "--host", "0.0.0.0", "--port", "8000"]
