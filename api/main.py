"""The FastAPI application."""

from __future__ import annotations

import asyncio
import logging
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from sqlalchemy import text
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import compile_path

from api.limits import BodyLimit, validation_error_without_echo
from api.routes import accounts, datasets, jobs, methods
from api.schemas import ReadyOut
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
                log.warning("sent again the messages of lost jobs: %s", requeued)
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
    swept = await run_in_threadpool(sweep_uploads)
    if swept:
        log.warning("removed %d upload folders left by a stopped API: %s", len(swept), swept[:10])
    await run_in_threadpool(_bootstrap_admin)
    settings = get_settings()
    background = [
        asyncio.create_task(_requeue_lost_jobs_forever(settings.reap_every_s)),
        asyncio.create_task(_sweep_forever(settings.sweep_every_s)),
    ]
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
    summary="Deep clustering as a service: upload data, run DEC/IDEC/DCCF/R-DC/DSCNSS/IcicleGCN, "
    "download clusters.",
    description="The web page: [/](/) (upload data, run a method, watch it, see the 2-D map "
    "and compare jobs). Send `Authorization: Bearer <key>` when the server runs "
    "with API keys (`auth` in GET /health).",
    lifespan=lifespan,
)
WEB = Path(__file__).parent / "web"
app.mount("/web", StaticFiles(directory=WEB), name="web")
app.add_middleware(BodyLimit)
app.add_exception_handler(RequestValidationError, validation_error_without_echo)
app.include_router(datasets.router)
app.include_router(jobs.router)
app.include_router(methods.router)
app.include_router(accounts.router)


@app.exception_handler(StarletteHTTPException)
async def http_error(request: Request, exc: StarletteHTTPException):
    """One shape per status: a 422's detail is always a list of {loc, msg, type}, and a 405
    names every method of the path (Starlette names only the first route's)."""
    if exc.status_code == 422 and isinstance(exc.detail, str):
        exc = StarletteHTTPException(
            422, [{"loc": ["body"], "msg": exc.detail, "type": "value_error"}], exc.headers
        )
    elif exc.status_code == 405:
        exc = StarletteHTTPException(
            405, exc.detail, {**(exc.headers or {}), "Allow": ", ".join(allowed_methods(request))}
        )
    return await http_exception_handler(request, exc)


def allowed_methods(request: Request) -> list[str]:
    """The methods the schema documents for this path (FastAPI's nested routers keep routes out
    of reach, so the published schema is the one list of them)."""
    methods: set[str] = set()
    for path, operations in app.openapi()["paths"].items():
        if compile_path(path)[0].match(request.url.path):
            methods |= {verb.upper() for verb in operations}
    if "GET" in methods:
        methods.add("HEAD")  # Starlette answers HEAD wherever GET is routed
    return sorted(methods)


@app.get("/", include_in_schema=False)
def web_page() -> FileResponse:
    """The single-page web interface (api/web/: plain HTML, JS and CSS, nothing fetched
    from elsewhere)."""
    return FileResponse(WEB / "index.html", headers={"Cache-Control": "no-cache"})


@app.get("/health", tags=["service"])
def health() -> dict:
    """Liveness: the process answers. It touches nothing else; GET /ready checks the services.
    `auth`: `keys` when every data route needs `Authorization: Bearer <key>`, else `none`."""
    settings = get_settings()
    return {
        "status": "ok",
        "database": get_engine().dialect.name,
        "embedded": settings.embedded,
        "blob_store": settings.blobs,
        "auth": settings.auth_mode,
    }


@app.get(
    "/ready",
    tags=["service"],
    response_model=ReadyOut,
    responses={
        503: {"model": ReadyOut, "description": "the database or the job queue is unreachable"}
    },
)
def ready():
    """Readiness: the database and the job queue both answer (503 naming the one that does not)."""
    from worker.celery_app import broker_problem

    try:
        with get_engine().connect() as connection:
            connection.execute(text("SELECT 1"))
        database = "ok"
    except Exception as exc:  # noqa: BLE001  (whatever it is, readiness reports it)
        database = f"{type(exc).__name__}: {exc}"[:500]
    broker = broker_problem() or "ok"
    ok = database == broker == "ok"
    body = ReadyOut(status="ready" if ok else "unavailable", database=database, broker=broker)
    return JSONResponse(body.model_dump(), status_code=200 if ok else 503)
