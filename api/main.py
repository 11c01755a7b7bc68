"""The FastAPI application."""
from __future__ import annotations

import asyncio
import logging
from contextlib import asynccontextmanager

from fastapi import FastAPI
from sqlalchemy import text
from starlette.concurrency import run_in_threadpool

from api.routes import accounts, datasets, jobs, methods
from core import method_names
from persistence.db import get_engine
from persistence.settings import get_settings

log = logging.getLogger(__name__)


async def _requeue_lost_jobs_forever(every_s: float) -> None:
    from worker.celery_app import requeue_lost_jobs

    while True:
        try:
            requeued = await run_in_threadpool(requeue_lost_jobs)
            if requeued:
                log.warning("re-queued jobs whose worker stopped: %s", requeued)
        except Exception:
            log.exception("checking for lost jobs failed")
        await asyncio.sleep(every_s)


async def _sweep_forever(every_s: float) -> None:
    from persistence.retention import sweep

    while True:
        try:
            removed = await run_in_threadpool(sweep)
            if any(removed.values()):
                log.info("retention sweep removed %s", removed)
        except Exception:
            log.exception("retention sweep failed")
        await asyncio.sleep(every_s)


@asynccontextmanager
async def lifespan(_app: FastAPI):
    # Import every method (torch, torchvision: seconds) before serving, not in the first request.
    await run_in_threadpool(method_names)
    await run_in_threadpool(_bootstrap_admin)
    settings = get_settings()
    background = [asyncio.create_task(_requeue_lost_jobs_forever(settings.reap_every_s)),
                  asyncio.create_task(_sweep_forever(settings.sweep_every_s))]
    yield
    for task in background:
        task.cancel()


def _bootstrap_admin() -> None:
    """DEEPCLUST_BOOTSTRAP_ADMIN_TOKEN: the first admin key of a fresh deployment (compose)."""
    token = get_settings().bootstrap_admin_token
    if token:
        from persistence.accounts import ensure_admin_token
        from persistence.db import session_scope

        with session_scope() as session:
            if ensure_admin_token(session, token):
                log.warning("created the bootstrap admin key from DEEPCLUST_BOOTSTRAP_ADMIN_TOKEN")


app = FastAPI(
    title="deepclust",
    version="0.1.0",
    summary="Deep clustering as a service: upload data, run DEC/IDEC/DCCF/R-DC/DSCNSS/IcicleGCN, download clusters.",
    lifespan=lifespan,
)
app.include_router(datasets.router)
app.include_router(jobs.router)
app.include_router(methods.router)
app.include_router(accounts.router)


@app.get("/health", tags=["service"])
def health() -> dict:
    with get_engine().connect() as connection:
        connection.execute(text("SELECT 1"))
    settings = get_settings()
    return {"status": "ok", "database": get_engine().dialect.name, "embedded": settings.embedded,
            "blob_store": settings.blobs}
