"""The FastAPI application."""
from __future__ import annotations

import asyncio
import logging
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from sqlalchemy import text
from starlette.concurrency import run_in_threadpool

from api.limits import BodyLimit, validation_error_without_echo
from api.routes import datasets, jobs, methods
from api.uploads import sweep_uploads
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


@asynccontextmanager
async def lifespan(_app: FastAPI):
    # Import every method (torch, torchvision: seconds) before serving, not in the first request.
    await run_in_threadpool(method_names)
    swept = await run_in_threadpool(sweep_uploads)
    if swept:
        log.warning("removed %d upload folders left by a stopped API: %s", len(swept), swept[:10])
    reaper = asyncio.create_task(_requeue_lost_jobs_forever(get_settings().reap_every_s))
    yield
    reaper.cancel()


app = FastAPI(
    title="deepclust",
    version="0.1.0",
    summary="Deep clustering as a service: upload data, run DEC/IDEC/DCCF/R-DC/DSCNSS/IcicleGCN, download clusters.",
    lifespan=lifespan,
)
app.add_middleware(BodyLimit)
app.add_exception_handler(RequestValidationError, validation_error_without_echo)
app.include_router(datasets.router)
app.include_router(jobs.router)
app.include_router(methods.router)


@app.get("/health", tags=["service"])
def health() -> dict:
    with get_engine().connect() as connection:
        connection.execute(text("SELECT 1"))
    settings = get_settings()
    return {"status": "ok", "database": get_engine().dialect.name, "embedded": settings.embedded,
            "blob_store": settings.blobs}
