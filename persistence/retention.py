"""The retention sweep (DEEPCLUST_RETENTION_DAYS): finished jobs and their results older than
that go, then datasets with no job left that were not used for that long, then blobs that
no row owns (a failed commit can leave them), expired idempotency records and old rate
windows. Active jobs are never touched. The API runs it every DEEPCLUST_SWEEP_EVERY_S."""

from __future__ import annotations

import shutil
import time
from datetime import datetime, timedelta

from sqlalchemy import delete, exists, select
from sqlalchemy.orm import Session

from deepclust_client.status import FINAL_STATES
from persistence import blobs, idempotency
from persistence.db import session_scope
from persistence.models import BlobPart, Dataset, Job, RateWindow, utcnow
from persistence.repository import dataset_folder, job_folder
from persistence.settings import get_settings

FOLDERS = {"datasets": Dataset, "jobs": Job}  # blob key "<folder>/<row id>/<file>"


def sweep(now: datetime | None = None) -> dict[str, int]:
    """One pass; returns how many of each thing it removed."""
    now = now or utcnow()
    cutoff = now - timedelta(days=get_settings().retention_days)
    with session_scope() as session:
        jobs = _expired_jobs(session, cutoff)
        datasets = _unused_datasets(session, cutoff)
        records = idempotency.forget_expired(session)
        session.execute(delete(RateWindow).where(RateWindow.window < int(time.time() // 60) - 1))
    return {
        "jobs": jobs,
        "datasets": datasets,
        "orphan_blobs": remove_orphan_blobs(),
        "idempotency_records": records,
    }


def _expired_jobs(session: Session, cutoff: datetime) -> int:
    job_ids = session.scalars(
        select(Job.id).where(Job.status.in_(FINAL_STATES), Job.finished_at < cutoff)
    ).all()
    for job_id in job_ids:
        blobs.delete_folder(session, job_folder(job_id))
    if job_ids:  # job_results go with them (ON DELETE CASCADE)
        session.execute(delete(Job).where(Job.id.in_(job_ids), Job.status.in_(FINAL_STATES)))
    return len(job_ids)


def _unused_datasets(session: Session, cutoff: datetime) -> int:
    unused = (Dataset.last_used_at < cutoff) & ~exists().where(Job.dataset_id == Dataset.id)
    dataset_ids = session.scalars(select(Dataset.id).where(unused)).all()
    removed = 0
    for dataset_id in dataset_ids:
        # The condition again in the DELETE: a job submitted since the SELECT keeps its dataset.
        if session.execute(delete(Dataset).where(Dataset.id == dataset_id, unused)).rowcount:
            blobs.delete_folder(session, dataset_folder(dataset_id))
            removed += 1
    return removed


def remove_orphan_blobs() -> int:
    """Blob folders whose dataset or job row does not exist. Database blobs appear only with
    their row's commit, so any without a row is an orphan; local files are written before the
    commit, so only folders older than DEEPCLUST_ORPHAN_GRACE_S are taken."""
    if get_settings().blobs == "local":
        return _remove_orphan_files()
    with session_scope() as session:
        keys = session.scalars(
            select(BlobPart.key).distinct()
        ).all()  # before the rows: see docstring
        folders = {tuple(key.split("/")[:2]) for key in keys if key.count("/") >= 2}
        orphans = [
            f for f in folders if f[0] not in FOLDERS or session.get(FOLDERS[f[0]], f[1]) is None
        ]
        for kind, row_id in orphans:
            session.execute(delete(BlobPart).where(BlobPart.key.startswith(f"{kind}/{row_id}/")))
        stray = [key for key in keys if key.count("/") < 2]
        if stray:
            session.execute(delete(BlobPart).where(BlobPart.key.in_(stray)))
    return len(orphans) + len(stray)


def _remove_orphan_files() -> int:
    root = blobs.blob_root()
    too_new = time.time() - get_settings().orphan_grace_s
    removed = 0
    with session_scope() as session:
        for kind, model in FOLDERS.items():
            if not (root / kind).is_dir():
                continue
            for folder in (root / kind).iterdir():
                if folder.stat().st_mtime < too_new and session.get(model, folder.name) is None:
                    shutil.rmtree(folder, ignore_errors=True)
                    removed += 1
    return removed
