"""This run's service settings, set as DEEPCLUST_* environment variables when this module is
imported: tests/service/conftest.py imports it first, before any project module reads them.

Each run gets its own queue name and its own PostgreSQL schema, so concurrent runs (or a
stray worker of another run) never touch each other's jobs or tables.
"""
from __future__ import annotations

import os
import tempfile
import uuid

# Subprocesses inherit the environment: the id must be the same wherever this is read again.
RUN_ID = os.environ.setdefault("DEEPCLUST_TEST_RUN_ID", uuid.uuid4().hex[:8])
if "DEEPCLUST_TEST_DATA_DIR" not in os.environ:  # one folder per run (worker log, local files)
    os.environ["DEEPCLUST_TEST_DATA_DIR"] = tempfile.mkdtemp(prefix=f"deepclust-test-{RUN_ID}-")
DATA_DIR = os.environ["DEEPCLUST_TEST_DATA_DIR"]
SCHEMA = f"test_run_{RUN_ID}"
_DATABASE = os.environ.get("DEEPCLUST_TEST_DATABASE_URL",
                           "postgresql://postgres@127.0.0.1:5432/test")
_SEPARATOR = "&" if "?" in _DATABASE else "?"
os.environ.update({
    # libpq's `options` puts every connection (API, worker, migrations) in this run's schema
    "DEEPCLUST_DATABASE_URL": f"{_DATABASE}{_SEPARATOR}options=-csearch_path%3D{SCHEMA}",
    "DEEPCLUST_BROKER_URL": os.environ.get("DEEPCLUST_TEST_BROKER_URL", "redis://127.0.0.1:6379/0"),
    "DEEPCLUST_QUEUE": f"deepclust-test-{RUN_ID}",
    "DEEPCLUST_DATA_DIR": DATA_DIR,
    "DEEPCLUST_BLOB_STORE": "database",
    # Short intervals so the lost-worker test sees a stale heartbeat within seconds.
    "DEEPCLUST_HEARTBEAT_S": "0.5",
    "DEEPCLUST_STALE_AFTER_S": "4",
    "DEEPCLUST_REAP_EVERY_S": "1",
    # The tests' score margins were measured on two threads; a bigger machine must not change them.
    "DEEPCLUST_TORCH_THREADS": "2",
    # UMAP's numba compilation costs every worker child (one per job) 15-100 s on this machine;
    # the maps of the tests' jobs are PCA (tests/core/test_projection.py runs UMAP itself).
    "DEEPCLUST_PROJECTION": "pca",
})
